package codec

import "unsafe"

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
//
// It is the one use of unsafe beyond the sanctioned calls (internal/strbytes),
// kept because it pays: the root's BenchmarkSerializers/compact, three
// alternating runs on the 2-core machine, decoding 150 B and 1 KB sessions:
// 1.5-2.1 µs and 6 allocations with it, 2.1-2.7 µs and 25 allocations with
// plain conversions. That is about 2% of a read-modify-write's CPU, and the
// 19 allocations would take a request from 88 to 107, past a quarter of
// boj/redistore's 384.
func box(typ, p unsafe.Pointer) (v any) {
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, p
	return v
}
