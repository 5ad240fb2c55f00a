package main

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// counterKey is the value a read-modify-write request changes.
const counterKey = "n"

// payload is the content of every session of one size: the same Values for
// every contender, so that they all store and load the same data.
type payload struct {
	size   int         // target size, bytes of gob
	values map[any]any // the session's Values
	gob    []byte      // gob of values as boj/redistore writes them
}

// newPayload builds Values of string and int values whose gob encoding (as
// gorilla's stores write it: map[interface{}]interface{}) is about size bytes.
// Ten values make a 1 KB session; half are strings, half ints, one of them
// the counter. kind "random" fills strings with random letters and digits
// (nothing to compress), "text" with words from a small vocabulary.
func newPayload(size int, kind string, seed uint64) (*payload, error) {
	if size < 64 {
		return nil, fmt.Errorf("session size %d is too small: use at least 64 bytes", size)
	}
	n := max(4, (size*10+512)/1024)
	build := func(strLen int) map[any]any {
		rng := rand.New(rand.NewPCG(seed, uint64(size)))
		v := make(map[any]any, n)
		v[counterKey] = 0
		for i := 1; i < n; i++ {
			key := "k" + strconv.Itoa(i)
			if i%2 == 1 {
				v[key] = randomString(rng, kind, strLen)
			} else {
				v[key] = rng.IntN(1 << 30)
			}
		}
		return v
	}
	// Grow the strings until the gob reaches the target size.
	lo, hi := 0, size
	for lo < hi {
		mid := (lo + hi) / 2
		b, err := gobValues(build(mid))
		if err != nil {
			return nil, err
		}
		if len(b) < size {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	values := build(lo)
	b, err := gobValues(values)
	if err != nil {
		return nil, err
	}
	return &payload{size: size, values: values, gob: b}, nil
}

// copyValues returns a fresh copy of the payload's Values.
func (p *payload) copyValues() map[any]any {
	m := make(map[any]any, len(p.values))
	for k, v := range p.values {
		m[k] = v
	}
	return m
}

// gobValues encodes values as boj/redistore's GobSerializer does.
func gobValues(values map[any]any) ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(values); err != nil {
		return nil, fmt.Errorf("gob: %w", err)
	}
	return buf.Bytes(), nil
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

var vocabulary = strings.Fields(`the user cart item order account settings theme dark light
	language english page home profile admin editor viewer token flash message saved
	welcome back product checkout payment pending shipped return draft recent search`)

func randomString(rng *rand.Rand, kind string, n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	if kind == "text" {
		for b.Len() < n {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
		}
		return b.String()[:n]
	}
	for i := 0; i < n; i++ {
		b.WriteByte(alnum[rng.IntN(len(alnum))])
	}
	return b.String()
}

// parseSize reads "150", "1k", "8KB" or "2048b" as bytes.
func parseSize(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "b")
	mult := 1
	if strings.HasSuffix(t, "k") {
		mult, t = 1024, strings.TrimSuffix(t, "k")
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("session size %q: want a positive number of bytes such as 150, 1k or 8k", s)
	}
	return n * mult, nil
}

// sizeLabel writes a size as the flags spell it: 150 B, 1 KB, 8 KB.
func sizeLabel(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + " KB"
	}
	return strconv.Itoa(n) + " B"
}
