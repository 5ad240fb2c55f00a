package redistore

import "unsafe"

// bytesToString returns a string sharing b's memory. The caller must never
// modify b afterwards.
func bytesToString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// stringBytes returns a byte slice sharing s's memory, for code that only
// reads it (decoders, and Redis command arguments that are copied to the
// socket before the call returns).
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// eface is the layout of an interface value holding a concrete type.
type eface struct {
	typ, data unsafe.Pointer
}

// typeOf returns the type word of an interface value.
func typeOf(v any) unsafe.Pointer {
	return (*eface)(unsafe.Pointer(&v)).typ
}

var (
	stringType = typeOf("")
	intType    = typeOf(0)
)

// box returns an interface value of type typ whose data is *p, without the
// allocation that converting a value to an interface costs: the decoder keeps
// its strings and ints in slabs, one allocation for many values. What p points
// to must never change afterwards, as for any value held in an interface.
func box(typ, p unsafe.Pointer) (v any) {
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, p
	return v
}
