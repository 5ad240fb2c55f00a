// Package codec is the compact serializer (redistore.CompactSerializer,
// whose documentation gives the format byte by byte): gob's contract for
// session values, without gob's per-message type descriptors for the
// common types, and with one encoding for each set of values, so that the
// store can tell an unchanged session by its bytes.
//
// Decoding returns strings that share the input's memory, and keeps strings
// and ints in slabs (see box), so that a session costs a few allocations,
// not one per value. It never allocates more than the input can justify,
// never nests deeper than maxDepth, and never executes code from the data
// beyond what gob does for registered types (their GobDecode or
// UnmarshalBinary methods).
package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/redisession/redistore/internal/strbytes"
)

// Item tags: the first byte of each encoded item (see
// redistore.CompactSerializer).
const (
	tagNil      = 0x00
	tagFalse    = 0x01
	tagTrue     = 0x02
	tagString   = 0x03
	tagBytes    = 0x04
	tagInt      = 0x05
	tagInt8     = 0x06
	tagInt16    = 0x07
	tagInt32    = 0x08
	tagInt64    = 0x09
	tagUint     = 0x0a
	tagUint8    = 0x0b
	tagUint16   = 0x0c
	tagUint32   = 0x0d
	tagUint64   = 0x0e
	tagTypedNil = 0x0f
	tagFloat32  = 0x10
	tagFloat64  = 0x11
	tagTime     = 0x13
	tagDuration = 0x14
	tagAnys     = 0x20
	tagStrings  = 0x21
	tagInts     = 0x22
	tagInt64s   = 0x23
	tagFloat64s = 0x24
	tagMapSA    = 0x28
	tagMapSS    = 0x29
	tagMapAA    = 0x2a
	tagGob      = 0x7f
)

// maxDepth bounds nesting of slices and maps, in both directions.
const maxDepth = 32

var (
	// ErrCorrupt is matched by every error of Decode: data is not in the
	// compact format. Its text names the codec, as the store's errors
	// quote it ("redistore: stored session is corrupt: compact codec: at
	// byte 3: truncated").
	ErrCorrupt = errors.New("compact codec")
	// ErrTooDeep is matched by the error of Append for values nested
	// deeper than maxDepth. Append's errors reach applications as they
	// are (from Save), so their texts begin "redistore: ".
	ErrTooDeep = fmt.Errorf("redistore: values nested deeper than %d levels", maxDepth)
)

// Append appends the encoding of values to dst: map entries in canonical
// order, so that the same values always give the same bytes.
func Append(dst []byte, values map[any]any) ([]byte, error) {
	return appendMapAA(dst, values, 0)
}

// Count returns how many entries the encoded values in data hold, as their
// first bytes say, when data is long enough to hold that many (two bytes
// an entry at least): for a caller that sizes the map once.
func Count(data string) (int, bool) {
	n, k := strbytes.Uvarint(data)
	if k <= 0 || n > uint64(len(data)/2) {
		return 0, false
	}
	return int(n), true
}

// Decode decodes data into values; strings in values share data's memory.
// canonical reports that data holds no gob-encoded item, so that the same
// values always encode to these bytes.
func Decode(data string, values map[any]any) (canonical bool, err error) {
	d := decoder{s: data}
	n, err := d.count(2)
	if err != nil {
		return false, err
	}
	// Keys are nearly always strings, and values often are.
	d.strs = make([]string, 0, min(2*n, 64))
	if err := d.mapEntries(values, n, 0); err != nil {
		return false, err
	}
	if d.i != len(d.s) {
		return false, d.fail("%d trailing bytes", len(d.s)-d.i)
	}
	return !d.gob, nil
}

// entry is the span of one encoded map entry.
type entry struct{ start, end int }

// sortScratch pools what canonical map ordering needs.
type sortScratch struct {
	entries []entry
	buf     []byte
}

var scratchPool = sync.Pool{New: func() any { return new(sortScratch) }}

// sortEntries reorders the encoded entries in dst[base:] by their bytes. Items
// are self-delimiting, so this orders by key first; the value breaks ties
// between keys that encode alike but are distinct map keys (NaNs), so the
// order is total and the encoding canonical.
func sortEntries(dst []byte, base int, entries []entry, sc *sortScratch) {
	if len(entries) < 2 {
		return
	}
	slices.SortFunc(entries, func(a, b entry) int {
		return bytes.Compare(dst[a.start:a.end], dst[b.start:b.end])
	})
	sc.buf = append(sc.buf[:0], dst[base:]...)
	w := base
	for _, e := range entries {
		w += copy(dst[w:], sc.buf[e.start-base:e.end-base])
	}
}

// sorted collects the encoded entries of a map, which finish puts in
// canonical order (see sortEntries): the bookkeeping the three map encoders
// share.
type sorted struct {
	sc      *sortScratch
	base    int
	entries []entry
}

func startSorted(base int) sorted {
	sc := scratchPool.Get().(*sortScratch)
	return sorted{sc: sc, base: base, entries: sc.entries[:0]}
}

// add records an entry written at dst[start:end].
func (s *sorted) add(start, end int) { s.entries = append(s.entries, entry{start: start, end: end}) }

// finish sorts the entries in dst and returns the scratch space.
func (s *sorted) finish(dst []byte) {
	sortEntries(dst, s.base, s.entries, s.sc)
	s.drop()
}

// drop returns the scratch space without sorting, after an error.
func (s *sorted) drop() {
	s.sc.entries = s.entries[:0]
	scratchPool.Put(s.sc)
}

func appendMapAA(dst []byte, m map[any]any, depth int) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	if len(m) == 0 {
		return dst, nil
	}
	if depth > maxDepth {
		return dst, ErrTooDeep
	}
	so := startSorted(len(dst))
	var err error
	for k, v := range m {
		start := len(dst)
		if dst, err = appendItem(dst, k, depth+1); err != nil {
			so.drop()
			return dst, fmt.Errorf("redistore: key of type %T: %w", k, err)
		}
		if dst, err = appendItem(dst, v, depth+1); err != nil {
			so.drop()
			return dst, fmt.Errorf("redistore: value of type %T: %w", v, err)
		}
		so.add(start, len(dst))
	}
	so.finish(dst)
	return dst, nil
}

func appendMapSA(dst []byte, m map[string]any, depth int) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	if len(m) == 0 {
		return dst, nil
	}
	if depth > maxDepth {
		return dst, ErrTooDeep
	}
	so := startSorted(len(dst))
	var err error
	for k, v := range m {
		start := len(dst)
		dst = appendString(dst, k)
		if dst, err = appendItem(dst, v, depth+1); err != nil {
			so.drop()
			return dst, err
		}
		so.add(start, len(dst))
	}
	so.finish(dst)
	return dst, nil
}

func appendMapSS(dst []byte, m map[string]string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	so := startSorted(len(dst))
	for k, v := range m {
		start := len(dst)
		dst = appendString(appendString(dst, k), v)
		so.add(start, len(dst))
	}
	so.finish(dst)
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendZigzag(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

func appendItem(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, tagNil), nil
	case bool:
		if v {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case string:
		return appendString(append(dst, tagString), v), nil
	case []byte:
		if v == nil {
			return append(dst, tagTypedNil, tagBytes), nil
		}
		dst = append(dst, tagBytes)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		return append(dst, v...), nil
	case time.Time:
		return appendTime(dst, v)
	}
	if out, ok := appendNumber(dst, v); ok {
		return out, nil
	}
	if out, ok, err := appendSlice(dst, v, depth); ok {
		return out, err
	}
	if out, ok, err := appendMap(dst, v, depth); ok {
		return out, err
	}
	return appendGob(dst, v)
}

// appendNumber appends the integer and float kinds, and Duration.
func appendNumber(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case int:
		return appendZigzag(append(dst, tagInt), int64(v)), true
	case int8:
		return appendZigzag(append(dst, tagInt8), int64(v)), true
	case int16:
		return appendZigzag(append(dst, tagInt16), int64(v)), true
	case int32:
		return appendZigzag(append(dst, tagInt32), int64(v)), true
	case int64:
		return appendZigzag(append(dst, tagInt64), v), true
	case time.Duration:
		return appendZigzag(append(dst, tagDuration), int64(v)), true
	case uint:
		return binary.AppendUvarint(append(dst, tagUint), uint64(v)), true
	case uint8:
		return binary.AppendUvarint(append(dst, tagUint8), uint64(v)), true
	case uint16:
		return binary.AppendUvarint(append(dst, tagUint16), uint64(v)), true
	case uint32:
		return binary.AppendUvarint(append(dst, tagUint32), uint64(v)), true
	case uint64:
		return binary.AppendUvarint(append(dst, tagUint64), v), true
	case float32:
		return binary.LittleEndian.AppendUint32(append(dst, tagFloat32), math.Float32bits(v)), true
	case float64:
		return binary.LittleEndian.AppendUint64(append(dst, tagFloat64), math.Float64bits(v)), true
	}
	return dst, false
}

// appendSlice appends the slice kinds; a nil slice as a typed nil.
func appendSlice(dst []byte, v any, depth int) ([]byte, bool, error) {
	switch v := v.(type) {
	case []string:
		if v == nil {
			return append(dst, tagTypedNil, tagStrings), true, nil
		}
		dst = binary.AppendUvarint(append(dst, tagStrings), uint64(len(v)))
		for _, s := range v {
			dst = appendString(dst, s)
		}
		return dst, true, nil
	case []int:
		if v == nil {
			return append(dst, tagTypedNil, tagInts), true, nil
		}
		dst = binary.AppendUvarint(append(dst, tagInts), uint64(len(v)))
		for _, x := range v {
			dst = appendZigzag(dst, int64(x))
		}
		return dst, true, nil
	case []int64:
		if v == nil {
			return append(dst, tagTypedNil, tagInt64s), true, nil
		}
		dst = binary.AppendUvarint(append(dst, tagInt64s), uint64(len(v)))
		for _, x := range v {
			dst = appendZigzag(dst, x)
		}
		return dst, true, nil
	case []float64:
		if v == nil {
			return append(dst, tagTypedNil, tagFloat64s), true, nil
		}
		dst = binary.AppendUvarint(append(dst, tagFloat64s), uint64(len(v)))
		for _, x := range v {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
		}
		return dst, true, nil
	case []any:
		if v == nil {
			return append(dst, tagTypedNil, tagAnys), true, nil
		}
		if depth > maxDepth {
			return dst, true, ErrTooDeep
		}
		dst = binary.AppendUvarint(append(dst, tagAnys), uint64(len(v)))
		var err error
		for _, x := range v {
			if dst, err = appendItem(dst, x, depth+1); err != nil {
				return dst, true, err
			}
		}
		return dst, true, nil
	}
	return dst, false, nil
}

// appendMap appends the map kinds; a nil map as a typed nil.
func appendMap(dst []byte, v any, depth int) ([]byte, bool, error) {
	var err error
	switch v := v.(type) {
	case map[string]string:
		if v == nil {
			return append(dst, tagTypedNil, tagMapSS), true, nil
		}
		dst = appendMapSS(append(dst, tagMapSS), v)
	case map[string]any:
		if v == nil {
			return append(dst, tagTypedNil, tagMapSA), true, nil
		}
		dst, err = appendMapSA(append(dst, tagMapSA), v, depth)
	case map[any]any:
		if v == nil {
			return append(dst, tagTypedNil, tagMapAA), true, nil
		}
		dst, err = appendMapAA(append(dst, tagMapAA), v, depth)
	default:
		return dst, false, nil
	}
	return dst, true, err
}

// timeLen is the longest time.Time.MarshalBinary encoding.
const timeLen = 16

// appendTime appends a time.Time in MarshalBinary's format, refusing the
// zone offsets that format cannot hold exactly: Go writes a negative offset
// that is not whole minutes so that it decodes as another offset, and
// refuses offsets of -60 to -119 seconds.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	if _, off := t.Zone(); off < 0 && off%60 != 0 && t.Location() != time.UTC {
		return dst, fmt.Errorf("time.Time with zone offset %ds cannot be stored exactly (only whole minutes west of UTC): store t.UTC()", off)
	}
	var buf [timeLen]byte
	b, err := t.AppendBinary(buf[:0])
	if err != nil {
		return dst, err
	}
	dst = append(dst, tagTime)
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...), nil
}

// decodeTime decodes what appendTime wrote, refusing bytes that do not
// encode back to themselves (offsets, nanoseconds or versions that Go
// accepts but cannot write again), so that whatever decodes also encodes.
func decodeTime(s string) (time.Time, error) {
	var t time.Time
	if err := t.UnmarshalBinary(strbytes.Bytes(s)); err != nil {
		return time.Time{}, err
	}
	var buf [timeLen]byte
	b, err := t.AppendBinary(buf[:0])
	if err != nil || string(b) != s {
		return time.Time{}, errors.New("not in canonical form")
	}
	return t, nil
}

// typedNil returns the nil value of the type a tag stands for.
func typedNil(tag byte) (any, bool) {
	switch tag {
	case tagBytes:
		return []byte(nil), true
	case tagAnys:
		return []any(nil), true
	case tagStrings:
		return []string(nil), true
	case tagInts:
		return []int(nil), true
	case tagInt64s:
		return []int64(nil), true
	case tagFloat64s:
		return []float64(nil), true
	case tagMapSA:
		return map[string]any(nil), true
	case tagMapSS:
		return map[string]string(nil), true
	case tagMapAA:
		return map[any]any(nil), true
	}
	return nil, false
}

func appendGob(dst []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	// A pointer to an interface makes gob send the value as an interface,
	// with its registered type name, so that it decodes to the same type.
	if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
		return dst, fmt.Errorf("gob: %w", err)
	}
	dst = binary.AppendUvarint(append(dst, tagGob), uint64(buf.Len()))
	return append(dst, buf.Bytes()...), nil
}

// decoder reads the compact format from a string; strings it returns share
// the input's memory. The strings and ints it returns inside interfaces live
// in slabs (see box), so that a session of many values costs a few
// allocations, not one per value.
type decoder struct {
	s    string
	i    int
	strs []string
	ints []int
	gob  bool // an item was gob-encoded
}

// slabSize is the size of a further slab, when the first (sized for the
// top-level map) is full.
func (d *decoder) slabSize() int {
	return min(8+(len(d.s)-d.i)/16, 64)
}

func (d *decoder) boxString(s string) any {
	if len(d.strs) == cap(d.strs) {
		d.strs = make([]string, 0, d.slabSize())
	}
	d.strs = append(d.strs, s)
	return box(stringType, unsafe.Pointer(&d.strs[len(d.strs)-1]))
}

func (d *decoder) boxInt(x int) any {
	if uint(x) < 256 {
		return x // the runtime boxes small ints without allocating
	}
	if len(d.ints) == cap(d.ints) {
		d.ints = make([]int, 0, d.slabSize())
	}
	d.ints = append(d.ints, x)
	return box(intType, unsafe.Pointer(&d.ints[len(d.ints)-1]))
}

func (d *decoder) fail(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) uvarint() (uint64, error) {
	x, n := strbytes.Uvarint(d.s[d.i:])
	if n <= 0 {
		return 0, d.fail("bad varint")
	}
	d.i += n
	return x, nil
}

func (d *decoder) zigzag() (int64, error) {
	u, err := d.uvarint()
	return int64(u>>1) ^ -int64(u&1), err
}

// count reads an element count and checks that the rest of the input can
// hold that many elements of at least size bytes each, so that hostile
// counts cannot make the decoder allocate.
func (d *decoder) count(size int) (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64((len(d.s)-d.i)/size) {
		return 0, d.fail("count %d exceeds the data", n)
	}
	return int(n), nil
}

func (d *decoder) str() (string, error) {
	n, err := d.count(1)
	if err != nil {
		return "", err
	}
	s := d.s[d.i : d.i+n]
	d.i += n
	return s, nil
}

func (d *decoder) fixed(n int) (string, error) {
	if len(d.s)-d.i < n {
		return "", d.fail("truncated")
	}
	s := d.s[d.i : d.i+n]
	d.i += n
	return s, nil
}

func (d *decoder) mapEntries(m map[any]any, n, depth int) error {
	for j := 0; j < n; j++ {
		k, err := d.item(depth + 1)
		if err != nil {
			return err
		}
		if !hashable(k) {
			return d.fail("map key of type %T is not comparable", k)
		}
		v, err := d.item(depth + 1)
		if err != nil {
			return err
		}
		m[k] = v
	}
	return nil
}

func (d *decoder) item(depth int) (any, error) {
	if depth > maxDepth+1 {
		return nil, d.fail("nested deeper than %d levels", maxDepth)
	}
	if d.i >= len(d.s) {
		return nil, d.fail("truncated")
	}
	tag := d.s[d.i]
	d.i++
	switch tag {
	case tagNil:
		return nil, nil
	case tagFalse:
		return false, nil
	case tagTrue:
		return true, nil
	case tagString:
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return d.boxString(s), nil
	case tagBytes:
		s, err := d.str()
		return []byte(s), err
	case tagInt, tagInt8, tagInt16, tagInt32, tagInt64, tagDuration:
		return d.signed(tag)
	case tagUint, tagUint8, tagUint16, tagUint32, tagUint64:
		return d.unsigned(tag)
	case tagFloat32, tagFloat64:
		return d.float(tag)
	case tagTime:
		return d.time()
	case tagTypedNil:
		return d.typedNil()
	case tagStrings, tagInts, tagInt64s, tagFloat64s, tagAnys:
		return d.slice(tag, depth)
	case tagMapSS, tagMapSA, tagMapAA:
		return d.mapItem(tag, depth)
	case tagGob:
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		d.gob = true
		return decodeGobItem(s)
	}
	return nil, d.fail("unknown tag %#x", tag)
}

// signed reads an item of a signed integer kind, checking its range.
func (d *decoder) signed(tag byte) (any, error) {
	x, err := d.zigzag()
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagInt8:
		if int64(int8(x)) != x {
			return nil, d.fail("int8 out of range")
		}
		return int8(x), nil
	case tagInt16:
		if int64(int16(x)) != x {
			return nil, d.fail("int16 out of range")
		}
		return int16(x), nil
	case tagInt32:
		if int64(int32(x)) != x {
			return nil, d.fail("int32 out of range")
		}
		return int32(x), nil
	case tagInt64:
		return x, nil
	case tagDuration:
		return time.Duration(x), nil
	}
	if int64(int(x)) != x {
		return nil, d.fail("int out of range")
	}
	return d.boxInt(int(x)), nil
}

// unsigned reads an item of an unsigned integer kind, checking its range.
func (d *decoder) unsigned(tag byte) (any, error) {
	x, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagUint8:
		if x > math.MaxUint8 {
			return nil, d.fail("uint8 out of range")
		}
		return uint8(x), nil
	case tagUint16:
		if x > math.MaxUint16 {
			return nil, d.fail("uint16 out of range")
		}
		return uint16(x), nil
	case tagUint32:
		if x > math.MaxUint32 {
			return nil, d.fail("uint32 out of range")
		}
		return uint32(x), nil
	case tagUint64:
		return x, nil
	}
	if uint64(uint(x)) != x {
		return nil, d.fail("uint out of range")
	}
	return uint(x), nil
}

func (d *decoder) float(tag byte) (any, error) {
	if tag == tagFloat32 {
		b, err := d.fixed(4)
		if err != nil {
			return nil, err
		}
		return math.Float32frombits(binary.LittleEndian.Uint32(strbytes.Bytes(b))), nil
	}
	b, err := d.fixed(8)
	if err != nil {
		return nil, err
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(strbytes.Bytes(b))), nil
}

func (d *decoder) time() (any, error) {
	s, err := d.str()
	if err != nil {
		return nil, err
	}
	t, err := decodeTime(s)
	if err != nil {
		return nil, d.fail("time: %v", err)
	}
	return t, nil
}

func (d *decoder) typedNil() (any, error) {
	b, err := d.fixed(1)
	if err != nil {
		return nil, err
	}
	v, ok := typedNil(b[0])
	if !ok {
		return nil, d.fail("typed nil of unknown tag %#x", b[0])
	}
	return v, nil
}

// slice reads the slice kinds.
func (d *decoder) slice(tag byte, depth int) (any, error) {
	size := 1
	if tag == tagFloat64s {
		size = 8
	}
	n, err := d.count(size)
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagStrings:
		v := make([]string, n)
		for j := range v {
			if v[j], err = d.str(); err != nil {
				return nil, err
			}
		}
		return v, nil
	case tagFloat64s:
		v := make([]float64, n)
		for j := range v {
			b, _ := d.fixed(8) // count(8) guaranteed the room
			v[j] = math.Float64frombits(binary.LittleEndian.Uint64(strbytes.Bytes(b)))
		}
		return v, nil
	case tagAnys:
		v := make([]any, n)
		for j := range v {
			if v[j], err = d.item(depth + 1); err != nil {
				return nil, err
			}
		}
		return v, nil
	}
	return d.integers(tag, n)
}

// integers reads the n elements of an []int64 or an []int.
func (d *decoder) integers(tag byte, n int) (any, error) {
	v := make([]int64, n)
	var err error
	for j := range v {
		if v[j], err = d.zigzag(); err != nil {
			return nil, err
		}
	}
	if tag == tagInt64s {
		return v, nil
	}
	ints := make([]int, n)
	for j, x := range v {
		if int64(int(x)) != x {
			return nil, d.fail("int out of range")
		}
		ints[j] = int(x)
	}
	return ints, nil
}

// mapItem reads the map kinds.
func (d *decoder) mapItem(tag byte, depth int) (any, error) {
	n, err := d.count(2)
	if err != nil {
		return nil, err
	}
	switch tag {
	case tagMapSS:
		m := make(map[string]string, n)
		for j := 0; j < n; j++ {
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			if m[k], err = d.str(); err != nil {
				return nil, err
			}
		}
		return m, nil
	case tagMapSA:
		m := make(map[string]any, n)
		for j := 0; j < n; j++ {
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			if m[k], err = d.item(depth + 1); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	m := make(map[any]any, n)
	if err := d.mapEntries(m, n, depth); err != nil {
		return nil, err
	}
	return m, nil
}

// hashable reports whether k can be a map key without a runtime panic.
func hashable(k any) bool {
	switch k.(type) {
	case nil, string, int, bool, int64, uint64, float64:
		return true
	}
	return reflect.ValueOf(k).Comparable()
}

func decodeGobItem(s string) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("%w: gob: %v", ErrCorrupt, p)
		}
	}()
	if err := gob.NewDecoder(strings.NewReader(s)).Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: gob: %w", ErrCorrupt, err)
	}
	return v, nil
}
