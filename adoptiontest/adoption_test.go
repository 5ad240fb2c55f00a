package adoptiontest

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

const root = "github.com/redisession/redistore"

// repoRoot is the repository this module sits in.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// proxy is a file-based module proxy (GOPROXY=file://dir).
type proxy struct {
	t    *testing.T
	dir  string
	repo string
}

// add serves the module at subdir of the repository, as of revision rev,
// under version; the zip is made from git, as a public proxy would.
func (p *proxy) add(path, version, rev, subdir string) {
	t := p.t
	t.Helper()
	escaped, err := module.EscapePath(path)
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(p.dir, escaped, "@v")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	var zbuf bytes.Buffer
	if err := modzip.CreateFromVCS(&zbuf, module.Version{Path: path, Version: version}, p.repo, rev, subdir); err != nil {
		t.Fatalf("zipping %s@%s: %v", path, version, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zbuf.Bytes()), int64(zbuf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var gomod []byte
	for _, f := range zr.File {
		if f.Name == path+"@"+version+"/go.mod" {
			rc, _ := f.Open()
			gomod, _ = io.ReadAll(rc)
			rc.Close()
		}
	}
	if gomod == nil {
		t.Fatalf("%s@%s has no go.mod", path, version)
	}
	when := git(t, p.repo, "log", "-1", "--format=%cI", rev)
	stamp, err := time.Parse(time.RFC3339, when)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(map[string]any{"Version": version, "Time": stamp.UTC()})
	for name, data := range map[string][]byte{version + ".zip": zbuf.Bytes(), version + ".mod": gomod, version + ".info": info, "list": []byte(version + "\n")} {
		if err := os.WriteFile(filepath.Join(d, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pinned returns the version of the root module that a nested module's
// go.mod requires, failing if it still has a replace directive for it.
func pinned(t *testing.T, repo, mod string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, mod, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse(mod+"/go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Replace {
		if r.Old.Path == root {
			t.Fatalf("%s/go.mod replaces %s: a user's build would ignore it", mod, root)
		}
	}
	for _, r := range f.Require {
		if r.Mod.Path == root {
			return r.Mod.Version
		}
	}
	t.Fatalf("%s/go.mod does not require %s", mod, root)
	return ""
}

// revisionOf returns the full commit hash a pseudo-version names, which must
// be in this repository's history (on main).
func revisionOf(t *testing.T, repo, version string) string {
	t.Helper()
	if !module.IsPseudoVersion(version) {
		t.Fatalf("%s is not a pseudo-version of a commit", version)
	}
	short, err := module.PseudoVersionRev(version)
	if err != nil {
		t.Fatal(err)
	}
	full := git(t, repo, "rev-parse", short+"^{commit}")
	if err := exec.Command("git", "-C", repo, "merge-base", "--is-ancestor", full, "HEAD").Run(); err != nil {
		t.Fatalf("%s names commit %s, which is not in HEAD's history", version, short)
	}
	when := git(t, repo, "log", "-1", "--format=%cI", full)
	stamp, _ := time.Parse(time.RFC3339, when)
	if want := module.PseudoVersion("v0", "", stamp.UTC(), short); want != version {
		t.Fatalf("pinned %s, but that commit's pseudo-version is %s (run scripts/pin-root)", version, want)
	}
	return full
}

// TestFreshModuleBuildsWithGinstore: a new module that `go get`s ginstore
// and redistoreotel, as a user's would, resolves them and the root module
// from a module proxy (one this test builds from the repository) and
// builds, with no replace directive anywhere.
func TestFreshModuleBuildsWithGinstore(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads the nested modules' dependencies")
	}
	repo := repoRoot(t)
	p := &proxy{t: t, dir: t.TempDir(), repo: repo}
	head := git(t, repo, "rev-parse", "HEAD")
	stamp, _ := time.Parse(time.RFC3339, git(t, repo, "log", "-1", "--format=%cI", head))
	headVersion := module.PseudoVersion("v0", "", stamp.UTC(), head[:12])

	rootVersions := map[string]bool{}
	for _, mod := range []string{"ginstore", "redistoreotel"} {
		v := pinned(t, repo, mod)
		if !rootVersions[v] {
			rootVersions[v] = true
			p.add(root, v, revisionOf(t, repo, v), "")
		}
		p.add(root+"/"+mod, headVersion, head, mod)
	}
	if len(rootVersions) > 1 {
		// The proxy serves them all, and the newest wins, as for a user.
		t.Logf("the nested modules pin the root at %d versions", len(rootVersions))
	}

	app := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/app\n\ngo 1.26.0\n",
		"main.go": `package main

import (
	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/ginstore"
	"github.com/redisession/redistore/redistoreotel"
)

func main() {
	client, err := redistore.NewClient("redis://127.0.0.1:6379")
	if err != nil {
		panic(err)
	}
	var _ rueidis.Client = client
	obs, err := redistoreotel.New()
	if err != nil {
		panic(err)
	}
	rs, err := redistore.New(redistore.Config{Client: client, KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")}, Observer: obs})
	if err != nil {
		panic(err)
	}
	r := gin.New()
	r.Use(sessions.Sessions("session", ginstore.New(rs)))
	_ = r
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(app, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	upstream, _ := exec.Command("go", "env", "GOPROXY").Output()
	env := append(os.Environ(),
		"GOWORK=off",
		"GOFLAGS=-mod=mod",
		"GOPROXY=file://"+filepath.ToSlash(p.dir)+","+strings.TrimSpace(string(upstream)),
		// This machine cannot reach sum.golang.org, and the test's proxy
		// serves modules no checksum database knows.
		"GOSUMDB=off",
		"GOTOOLCHAIN=local",
	)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = app, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("get", root+"/ginstore@"+headVersion, root+"/redistoreotel@"+headVersion)
	run("mod", "tidy")
	run("build", "./...")
	got := strings.Fields(run("list", "-m", root))
	var newest string
	for v := range rootVersions {
		if v > newest { // pseudo-versions of v0.0.0 order by their time
			newest = v
		}
	}
	if len(got) != 2 || got[1] != newest {
		t.Fatalf("the app resolved %q, want %s %s", got, root, newest)
	}
	gomod, _ := os.ReadFile(filepath.Join(app, "go.mod"))
	if bytes.Contains(gomod, []byte("replace")) {
		t.Fatalf("the app's go.mod has a replace:\n%s", gomod)
	}
}
