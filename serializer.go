package redistore

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/redisession/redistore/internal/codec"
	"github.com/redisession/redistore/internal/envelope"
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
// recorded in the envelope. Any other Serializer is recorded as
// envelope.CodecCustom.
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
	return envelope.CodecCustom
}

// builtinFor returns this package's serializer for a codec byte.
func builtinFor(codecID byte) builtin {
	switch codecID {
	case envelope.CodecCompact:
		return CompactSerializer{}
	case envelope.CodecGob:
		return GobSerializer{}
	case envelope.CodecJSON:
		return JSONSerializer{}
	}
	return nil
}

// CompactSerializer is the default Serializer. It keeps gob's contract for
// Values (a value of any type registered with gob.Register round-trips, with
// its exact type) but writes the common types itself, without gob's
// per-message type descriptors: nil, bool, string, []byte, every int, uint and
// float kind, time.Time, time.Duration, []any, []string, []int, []int64,
// []float64, map[string]any, map[string]string and map[any]any; a nil slice
// or map of these types decodes as nil, an empty one as empty. Named types
// and structs go through gob. Map entries are written in a canonical order
// (by their encoded bytes, so that even NaN keys have one), so the same
// Values always give the same bytes; the store relies on this to skip
// writing sessions that did not change.
//
// The format, one item per key and per value:
//
//	values  = uvarint(count) { item(key) item(value) }   sorted by these bytes
//	item    = tag byte, then
//	  0x00 nil           0x01 false          0x02 true
//	  0x03 string        uvarint(len) bytes
//	  0x04 []byte        uvarint(len) bytes
//	  0x05 int, 0x06 int8, 0x07 int16, 0x08 int32, 0x09 int64, 0x14 Duration
//	                     zigzag varint
//	  0x0a uint, 0x0b uint8, 0x0c uint16, 0x0d uint32, 0x0e uint64
//	                     uvarint
//	  0x10 float32       4 bytes, little-endian IEEE 754
//	  0x11 float64       8 bytes, little-endian IEEE 754
//	  0x0f typed nil     the tag of the type (0x04, 0x20-0x24, 0x28-0x2a): a nil
//	                     slice or map, kept apart from an empty one
//	  0x13 time.Time     uvarint(len) time.Time.MarshalBinary; times whose
//	                     zone offset that format cannot hold exactly (a
//	                     negative offset that is not whole minutes) are refused
//	  0x20 []any         uvarint(n) n items
//	  0x21 []string      uvarint(n) n × (uvarint(len) bytes)
//	  0x22 []int, 0x23 []int64
//	                     uvarint(n) n zigzag varints
//	  0x24 []float64     uvarint(n) n × 8 bytes
//	  0x28 map[string]any     uvarint(n) n × (string, item), sorted
//	  0x29 map[string]string  uvarint(n) n × (string, string), sorted
//	  0x2a map[any]any        as values
//	  0x7f other         uvarint(len) gob encoding of the value as an interface
//
// Decoding never executes code from the data beyond what gob does for
// registered types (their GobDecode or UnmarshalBinary methods).
type CompactSerializer struct{}

func (CompactSerializer) codec() byte { return envelope.CodecCompact }

// Encode implements Serializer.
func (CompactSerializer) Encode(dst []byte, values map[any]any) ([]byte, error) {
	return codec.Append(dst, values)
}

// Decode implements Serializer.
func (c CompactSerializer) Decode(data []byte, values map[any]any) error {
	// Strings in the result share memory with their input; copy it once so
	// that the caller may reuse data.
	return c.decodeString(string(data), values)
}

func (CompactSerializer) decodeString(data string, values map[any]any) error {
	_, err := codec.Decode(data, values)
	return codecError(err)
}

// GobSerializer encodes Values with encoding/gob, as gorilla's stores and
// boj/redistore do. Every concrete type stored in Values must be registered
// with gob.Register, except gob's predeclared ones.
type GobSerializer struct{}

func (GobSerializer) codec() byte { return envelope.CodecGob }

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

func (JSONSerializer) codec() byte { return envelope.CodecJSON }

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
