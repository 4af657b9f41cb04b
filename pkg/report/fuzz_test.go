package report

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and any report it accepts encodes (rfc) and
// parses back to an equal Report. Seeded with every TOML file in testdata.
func FuzzParse(f *testing.F) {
	err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".toml") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(data)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("[image]\ntags = [\"a\"]\nimage-id = \"sha256:9c0e1895b90f\"\nimage_id = \"9c0e1895b90f\"\nmanifest-size = \"+7\"\n"))
	f.Add([]byte("[image]\ntags = [\"a@sha512:" + strings.Repeat("ab", 64) + "\"]\ndigest = \"sha512:" + strings.Repeat("0", 128) + "\"\nmedia-type = \"A/B+c\"\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("fuzz.toml", data)
		if err != nil {
			if r != nil {
				t.Fatalf("Parse returned a report and an error: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "report fuzz.toml: ") || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error does not name the file or is not one line: %q", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse accepted a report Validate rejects: %v", err)
		}
		var buf bytes.Buffer
		if err := Encode(&buf, r, SchemaRFC); err != nil {
			t.Fatalf("Encode rejected a parsed report: %v", err)
		}
		back, err := Parse("again.toml", buf.Bytes())
		if err != nil {
			t.Fatalf("Parse rejected its own encoding: %v\n%s", err, buf.Bytes())
		}
		if !equalReports(r, back) {
			t.Fatalf("round trip changed the report:\nfirst  %#v\nsecond %#v", r, back)
		}
		var platform bytes.Buffer
		if err := Encode(&platform, r, SchemaPlatform); err != nil {
			t.Fatalf("Encode (platform) rejected a parsed report: %v", err)
		}
		if _, err := Parse("platform.toml", platform.Bytes()); err != nil {
			t.Fatalf("Parse rejected its own platform encoding: %v\n%s", err, platform.Bytes())
		}
	})
}

func equalReports(a, b *Report) bool {
	x, y := a.Image, b.Image
	if len(x.Tags) != len(y.Tags) {
		return false
	}
	for i := range x.Tags {
		if x.Tags[i] != y.Tags[i] {
			return false
		}
	}
	return x.Digest == y.Digest && x.ImageID == y.ImageID && x.ManifestSize == y.ManifestSize && x.MediaType == y.MediaType
}
