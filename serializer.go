package redistore

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/redisession/redistore/internal/strbytes"
)

// Serializer turns a session's Values into bytes and back. The store records
// which serializer wrote a session, so a stored session stays readable after
// the configured Serializer changes (for the serializers of this package).
type Serializer interface {
	// Encode appends the encoding of values to dst and returns the extended
	// slice.
	Encode(dst []byte, values map[any]any) ([]byte, error)
	// Decode adds the entries encoded in data to values. It must not modify
	// data.
	Decode(data []byte, values map[any]any) error
}

// builtin is implemented by this package's serializers; its codec byte is
// recorded in the envelope. Any other Serializer is recorded as codecCustom.
type builtin interface {
	codec() byte
	decodeString(data string, values map[any]any) error
}

var (
	_ builtin = CompactSerializer{}
	_ builtin = GobSerializer{}
	_ builtin = JSONSerializer{}
)

// codecOf returns the envelope codec byte for a serializer.
func codecOf(s Serializer) byte {
	if b, ok := s.(builtin); ok {
		return b.codec()
	}
	return codecCustom
}

// builtinFor returns this package's serializer for a codec byte.
func builtinFor(codec byte) builtin {
	switch codec {
	case codecCompact:
		return CompactSerializer{}
	case codecGob:
		return GobSerializer{}
	case codecJSON:
		return JSONSerializer{}
	}
	return nil
}

// GobSerializer encodes Values with encoding/gob, as gorilla's stores and
// boj/redistore do. Every concrete type stored in Values must be registered
// with gob.Register, except gob's predeclared ones.
type GobSerializer struct{}

func (GobSerializer) codec() byte { return codecGob }

// Encode implements Serializer.
func (GobSerializer) Encode(dst []byte, values map[any]any) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	if err := gob.NewEncoder(buf).Encode(values); err != nil {
		return dst, fmt.Errorf("redistore: gob: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode implements Serializer.
func (g GobSerializer) Decode(data []byte, values map[any]any) error {
	return g.decode(bytes.NewReader(data), values)
}

func (g GobSerializer) decodeString(data string, values map[any]any) error {
	return g.decode(strings.NewReader(data), values)
}

func (GobSerializer) decode(r io.Reader, values map[any]any) (err error) {
	defer func() {
		// encoding/gob turns its own panics into errors, but a registered
		// type's GobDecode or UnmarshalBinary may still panic on hostile input.
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: gob: %v", ErrCorrupt, p)
		}
	}()
	if err := gob.NewDecoder(r).Decode(&values); err != nil {
		return fmt.Errorf("%w: gob: %w", ErrCorrupt, err)
	}
	return nil
}

// JSONSerializer encodes Values as a JSON object, as boj/redistore's
// JSONSerializer does. Keys must be strings; values come back as JSON's types
// (numbers as float64, objects as map[string]any, arrays as []any).
type JSONSerializer struct{}

func (JSONSerializer) codec() byte { return codecJSON }

// Encode implements Serializer.
func (JSONSerializer) Encode(dst []byte, values map[any]any) ([]byte, error) {
	m := make(map[string]any, len(values))
	for k, v := range values {
		ks, ok := k.(string)
		if !ok {
			return dst, fmt.Errorf("redistore: JSONSerializer: key of type %T is not a string", k)
		}
		m[ks] = v
	}
	buf := bytes.NewBuffer(dst)
	if err := json.NewEncoder(buf).Encode(m); err != nil {
		return dst, fmt.Errorf("redistore: JSONSerializer: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode implements Serializer.
func (JSONSerializer) Decode(data []byte, values map[any]any) error {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: json: %w", ErrCorrupt, err)
	}
	for k, v := range m {
		values[k] = v
	}
	return nil
}

func (j JSONSerializer) decodeString(data string, values map[any]any) error {
	return j.Decode(strbytes.Bytes(data), values)
}
