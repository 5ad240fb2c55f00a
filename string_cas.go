package redistore

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/rueidis"
)

// StringMode's conditional writes without Lua, on servers with native
// compare-and-set for strings (Valkey 8.1+: SET ... IFEQ and DELIFEQ):
//   - a write of a session the request holds is
//     SET key value IFEQ expected GET EX ttl: it answers what was stored,
//     which equals expected when it wrote, is nil when the session is gone
//     (it creates nothing then), and is what is stored now otherwise (the
//     conflict a merge needs), all in one round trip;
//   - a renewal is the same with the value's new expiry;
//   - a conditional delete is DELIFEQ key expected (and a GET, only when
//     it deleted nothing, to tell an ended session from a changed one);
//   - a new ID's first write (a move) is SET key value NX GET EX ttl.
//
// Lua stays for the writes that also change a user's index (the index step
// must be in the same atomic step as the write), and for HashMode.
// Measured against the scripts in the README (Servers).

// casProbe is what the probe for DELIFEQ compares a session's value with:
// no stored value can equal it (a value is a 4-byte expiry and an envelope,
// whose first byte has version 1 in its high nibble).
const casProbe = "\x00\x00\x00\x00\xf0probe"

// hasCAS reports whether the server has compare-and-set for strings,
// asking it once (DELIFEQ on key with a value that never matches: 0 where
// the command exists, an unknown-command error elsewhere), if the first
// load did not.
//
// A probe that got no answer (a timeout, a lost connection) decides
// nothing and returns its error: the caller fails as Redis failed, rather
// than try a script the server may not run and blame its setup.
func (b *stringLayout) hasCAS(ctx context.Context, key string) (bool, error) {
	switch b.cas.Load() {
	case 1:
		return true, nil
	case -1:
		return false, nil
	}
	if b.noCAS {
		return false, nil
	}
	err := b.learnCAS(b.c.Do(ctx, b.c.B().Arbitrary("DELIFEQ").Keys(key).Args(casProbe).Build()).Error())
	return b.cas.Load() == 1, err
}

// learnCAS records what the server answered to the probe, and returns
// err when there was no answer. (Another answer from the server decides
// nothing either: the scripts are tried, and say what they find.)
func (b *stringLayout) learnCAS(err error) error {
	switch {
	case err == nil:
		b.cas.Store(1)
	case isUnknownCommand(err), isNoPermission(err):
		b.cas.Store(-1)
	default:
		if _, ok := rueidis.IsRedisErr(err); !ok {
			return err
		}
	}
	return nil
}

// isNoPermission reports whether err is an ACL's refusal (NOPERM): the
// store may not use the command, now or later.
func isNoPermission(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && strings.HasPrefix(re.Error(), "NOPERM")
}

// isUnknownCommand reports whether err is the server's answer to a
// command it does not have (or a syntax it does not know).
func isUnknownCommand(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return false
	}
	msg := strings.ToLower(re.Error())
	return strings.Contains(msg, "unknown command") || strings.Contains(msg, "syntax error")
}

// casSet writes value at key for ttl seconds if what is stored is still
// expected: nil when it wrote, ErrEnded when the session is gone, or a
// *conflict holding what is stored now.
func (b *stringLayout) casSet(ctx context.Context, key string, value string, ttl int64, expected string) error {
	cur, err := b.c.Do(ctx, b.c.B().Arbitrary("SET").Keys(key).Args(value, "IFEQ", expected, "GET", "EX", itoa(ttl)).Build()).ToString()
	switch {
	case rueidis.IsRedisNil(err):
		return ErrEnded
	case err != nil:
		return err
	case cur == expected:
		return nil
	}
	return b.conflictWith(cur)
}

// casDelete deletes the session at key if what is stored is still
// expected, answering as casSet.
func (b *stringLayout) casDelete(ctx context.Context, key, expected string) error {
	n, err := b.c.Do(ctx, b.c.B().Arbitrary("DELIFEQ").Keys(key).Args(expected).Build()).AsInt64()
	if err != nil || n == 1 {
		return err
	}
	cur, err := b.c.Do(ctx, b.c.B().Get().Key(key).Build()).ToString()
	switch {
	case rueidis.IsRedisNil(err):
		return ErrEnded
	case err != nil:
		return err
	}
	return b.conflictWith(cur)
}

// casCreate writes a new session at key only if none is there, answering
// as createStringScript.
func (b *stringLayout) casCreate(ctx context.Context, key string, value string, ttl int64) error {
	cur, err := b.c.Do(ctx, b.c.B().Arbitrary("SET").Keys(key).Args(value, "NX", "GET", "EX", itoa(ttl)).Build()).ToString()
	switch {
	case rueidis.IsRedisNil(err):
		return nil
	case err != nil:
		return err
	}
	return b.conflictWith(cur)
}

// conflictWith is the conflict of a conditional write that found cur.
func (b *stringLayout) conflictWith(cur string) error {
	if len(cur) < expiryLen {
		return fmt.Errorf("%w: %d-byte value has no expiry", ErrCorrupt, len(cur))
	}
	return &conflict{current: b.stored(cur)}
}
