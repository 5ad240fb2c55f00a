package redistore

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The README and the pages under docs/ link each other, the examples and
// the sources. Every relative link must name a file that exists and, with a
// fragment, a heading that file has (as GitHub makes anchors of headings).
func TestDocumentationLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "README.md", "CHANGELOG.md")
	checked := 0
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range markdownLinks(string(text)) {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, fragment, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s links %q: %v", page, target, err)
					continue
				}
			}
			checked++
			if fragment == "" || !strings.HasSuffix(path, ".md") {
				continue
			}
			body, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s links %q: %v", page, target, err)
				continue
			}
			if !headingAnchors(string(body))[fragment] {
				t.Errorf("%s links %q: %s has no heading with that anchor", page, target, path)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d relative links found: the link pattern no longer matches the pages", checked)
	}
}

// godoc (doc.go) links the same pages under docs/ as the README's topics,
// and each link names a page that exists.
func TestGodocLinksTheREADMEsPages(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	fromREADME := map[string]bool{}
	for _, target := range markdownLinks(string(readme)) {
		file, _, _ := strings.Cut(target, "#")
		if strings.HasPrefix(file, "docs/") && strings.HasSuffix(file, ".md") {
			fromREADME[file] = true
		}
	}
	fromDoc := map[string]bool{}
	for _, m := range godocLinkPattern.FindAllStringSubmatch(string(doc), -1) {
		fromDoc[m[1]] = true
		if _, err := os.Stat(m[1]); err != nil {
			t.Errorf("doc.go links %s: %v", m[1], err)
		}
	}
	if len(fromREADME) < 10 {
		t.Fatalf("the README links only %d pages under docs/: the pattern no longer matches", len(fromREADME))
	}
	for page := range fromREADME {
		if !fromDoc[page] {
			t.Errorf("the README links %s, doc.go does not", page)
		}
	}
}

var godocLinkPattern = regexp.MustCompile(`(?m)^// \[[^\]]+\]: https://github\.com/redisession/redistore/blob/main/(\S+)$`)

// The README is the front page: it stays short enough to read in minutes.
func TestREADMEFitsAFewScreens(t *testing.T) {
	text, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(text), "\n"); n > 350 {
		t.Errorf("README.md has %d lines; the front page stays within 350 and links docs/ for the rest", n)
	}
}

var (
	linkPattern  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	fencePattern = regexp.MustCompile("(?s)```.*?```")
	codePattern  = regexp.MustCompile("`[^`\n]*`")
)

// markdownLinks returns the targets of the inline links of a page, leaving
// out code blocks and code spans.
func markdownLinks(text string) []string {
	text = fencePattern.ReplaceAllString(text, "")
	text = codePattern.ReplaceAllString(text, "")
	var out []string
	for _, m := range linkPattern.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	return out
}

// headingAnchors returns the anchors GitHub gives a page's headings:
// lowercased, punctuation other than '-' and '_' dropped, spaces as '-', and
// "-1", "-2" after repeats.
func headingAnchors(text string) map[string]bool {
	text = fencePattern.ReplaceAllString(text, "")
	anchors := map[string]bool{}
	seen := map[string]int{}
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 0x7f:
				b.WriteRune(r)
			}
		}
		anchor := b.String()
		if n := seen[anchor]; n > 0 {
			anchors[anchor+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[anchor] = true
		}
		seen[anchor]++
	}
	return anchors
}
