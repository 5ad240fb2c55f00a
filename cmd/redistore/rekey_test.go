package main

import (
	"encoding/hex"
	"testing"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

// rekey re-seals with the first key of REDISTORE_ENCRYPTION_KEYS, says what
// it did in text and JSON, draws its bar on request, and stats counts the
// sessions by sealing key before and after.
func TestRekeyCommand(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		for _, mode := range []redistore.Mode{redistore.HashMode, redistore.StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				f := newFixture(t, in)
				oldKey, newKey := randomBytes(32), randomBytes(32)
				old, err := redistore.New(redistore.Config{Client: f.client, KeyPairs: f.pairs, Mode: mode, KeyPrefix: f.prefix, EncryptionKeys: [][]byte{oldKey}})
				if err != nil {
					t.Fatal(err)
				}
				seedMany(t, old, 6, 3600)
				seedMany(t, f.store(t, mode), 2, 3600) // in clear
				env := f.env()
				run := func(args ...string) result {
					return runCmd(t, env, append(args, "--prefix", f.prefix, "--mode", mode.String())...)
				}

				r := run("rekey")
				r.wantCode(t, 2)
				contains(t, "stderr", r.stderr, envSealKeys+" is not set")

				env[envSealKeys] = hex.EncodeToString(newKey) + "," + hex.EncodeToString(oldKey)
				oldID, _ := redistore.EncryptionKeyID(oldKey)
				newID, _ := redistore.EncryptionKeyID(newKey)
				r = run("stats")
				r.wantCode(t, 0)
				contains(t, "stats", r.stdout, oldID+" 6 (key 2)")
				contains(t, "stats", r.stdout, "clear 2")
				contains(t, "stats", r.stdout, "redistore rekey")

				r = run("rekey", "--progress", "always")
				r.wantCode(t, 0)
				contains(t, "stdout", r.stdout, "8 re-sealed, 0 sealed by the first key already")
				contains(t, "stderr", r.stderr, "re-sealing [")

				r = run("rekey", "--json")
				r.wantCode(t, 0)
				var doc rekeyJSON
				fields := jsonDoc(t, r, &doc)
				wantNames(t, "rekey --json", fields, "keys", "sessions", "resealed", "current", "expired", "unreadable", "busy", "devices", "duration_ms")
				if doc.Resealed != 0 || doc.Current != 8 {
					t.Fatalf("second rekey: %+v", doc)
				}

				r = run("stats", "--json")
				r.wantCode(t, 0)
				var st statsJSON
				jsonDoc(t, r, &st)
				if st.SealedBy[newID] != 8 || len(st.SealedBy) != 1 || len(st.RingKeys) != 2 || st.RingKeys[0] != newID {
					t.Fatalf("stats after rekey: sealed by %v, ring %v", st.SealedBy, st.RingKeys)
				}

				r = run("rekey", "--unseal")
				r.wantCode(t, 0)
				contains(t, "stdout", r.stdout, "8 re-sealed")
				r = run("stats", "--json")
				r.wantCode(t, 0)
				var unsealed statsJSON
				jsonDoc(t, r, &unsealed)
				if unsealed.SealedBy["clear"] != 8 || len(unsealed.SealedBy) != 1 {
					t.Fatalf("stats after rekey --unseal: sealed by %v", unsealed.SealedBy)
				}

				// The wrong --mode: nothing of the store's, and the command says so.
				other := "string"
				if mode == redistore.StringMode {
					other = "hash"
				}
				r = runCmd(t, env, "rekey", "--prefix", f.prefix, "--mode", other)
				r.wantCode(t, 1)
				contains(t, "stderr", r.stderr, "--mode "+mode.String())

				env[envSealKeys] = "abcd"
				r = run("stats")
				r.wantCode(t, 2)
				contains(t, "stderr", r.stderr, "32 random bytes")
				lacks(t, "stderr", r.stderr, "abcd")
			})
		}
	})
}
