package redistore

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const modulePath = "github.com/redisession/redistore"

// TestInternalPackagesDoNotImportTheStore: the packages under internal/ are
// machinery the store uses (the codec, the envelope, the cookie, the test
// servers), and none of them imports the store, directly or through
// another package of this module: what they need of it they declare
// themselves, and their errors become the store's at its boundary.
func TestInternalPackagesDoNotImportTheStore(t *testing.T) {
	var dirs []string
	err := filepath.WalkDir("internal", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return err
	})
	noErr(t, err)
	checked := 0
	for _, dir := range dirs {
		pkg, err := build.ImportDir(dir, 0)
		if _, ok := err.(*build.NoGoError); ok {
			continue
		}
		noErr(t, err)
		checked++
		if path := importChain(t, modulePath+"/"+filepath.ToSlash(dir), pkg.Imports, map[string]bool{}); path != nil {
			t.Errorf("%s imports the store: %s", dir, strings.Join(path, " -> "))
		}
	}
	if checked < 4 {
		t.Fatalf("only %d packages found under internal/", checked)
	}
}

// importChain returns the imports that lead from the package from, whose
// imports are imports, to the store's package, or nil when none does.
func importChain(t *testing.T, from string, imports []string, seen map[string]bool) []string {
	t.Helper()
	for _, imp := range imports {
		if imp == modulePath {
			return []string{from, imp}
		}
		rel, ok := strings.CutPrefix(imp, modulePath+"/")
		if !ok || seen[imp] {
			continue
		}
		seen[imp] = true
		pkg, err := build.ImportDir(filepath.FromSlash(rel), 0)
		noErr(t, err)
		if path := importChain(t, imp, pkg.Imports, seen); path != nil {
			return append([]string{from}, path...)
		}
	}
	return nil
}
