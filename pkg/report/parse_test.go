package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const (
	testDigest    = "sha256:c8be1b8f4d60d99c281fc2db75e0f56df42a83ad2f0b091621ce19357e19d853"
	testHex       = "9c0e1895b90f4b6f1e7d4c5a3b2a1908f7e6d5c4b3a2918070f6e5d4c3b2a190"
	testImageID   = "sha256:" + testHex
	testSHA512    = "sha512:" + testHex + testHex
	testIndexType = "application/vnd.oci.image.index.v1+json"
	testTag       = "registry.example.com/team/app:latest"
	testTag2      = "registry.example.com/team/app:1.4.2"
)

func TestParseAccepts(t *testing.T) {
	tags := `tags = ["` + testTag + `", "` + testTag2 + `"]` + "\n"
	both := []string{testTag, testTag2}
	tests := []struct {
		name string
		toml string
		want Image
	}{
		{
			name: "rfc registry with extensions",
			toml: "[image]\n" + tags + `digest = "` + testDigest + `"
manifest_size = 1083
media_type = "` + testIndexType + `"
`,
			want: Image{Tags: both, Digest: testDigest, ManifestSize: 1083, MediaType: testIndexType},
		},
		{
			name: "rfc daemon, short image_id kept as given",
			toml: "[image]\n" + tags + `image_id = "9c0e1895b90f"` + "\n",
			want: Image{Tags: both, ImageID: "9c0e1895b90f"},
		},
		{
			name: "short image_id with sha256: kept as given",
			toml: "[image]\n" + tags + `image_id = "sha256:9c0e1895b90f4b6f"` + "\n",
			want: Image{Tags: both, ImageID: "sha256:9c0e1895b90f4b6f"},
		},
		{
			name: "full image_id with sha256:",
			toml: "[image]\n" + tags + `image_id = "` + testImageID + `"` + "\n",
			want: Image{Tags: both, ImageID: testImageID},
		},
		{
			name: "full image_id without sha256: is normalised",
			toml: "[image]\n" + tags + `image_id = "` + testHex + `"` + "\n",
			want: Image{Tags: both, ImageID: testImageID},
		},
		{
			name: "platform image-id hex and manifest-size",
			toml: "[image]\n" + tags + `image-id = "` + testHex + `"
manifest-size = 1083
`,
			want: Image{Tags: both, ImageID: testImageID, ManifestSize: 1083},
		},
		{
			name: "quoted manifest-size as in the Platform spec",
			toml: "[image]\n" + tags + `digest = "` + testDigest + `"
manifest-size = "1083"
`,
			want: Image{Tags: both, Digest: testDigest, ManifestSize: 1083},
		},
		{
			name: "quoted manifest_size",
			toml: "[image]\n" + tags + `digest = "` + testDigest + `"
manifest_size = "42"
`,
			want: Image{Tags: both, Digest: testDigest, ManifestSize: 42},
		},
		{
			name: "both spellings with the same values",
			toml: "[image]\n" + tags + `image_id = "` + testImageID + `"
image-id = "` + testHex + `"
manifest_size = 1083
manifest-size = "1083"
media_type = "` + testIndexType + `"
media-type = "` + testIndexType + `"
`,
			want: Image{Tags: both, ImageID: testImageID, ManifestSize: 1083, MediaType: testIndexType},
		},
		{
			name: "both spellings of a short image ID, with and without sha256:",
			toml: "[image]\n" + tags + `image_id = "9c0e1895b90f"
image-id = "sha256:9c0e1895b90f"
`,
			want: Image{Tags: both, ImageID: "9c0e1895b90f"},
		},
		{
			name: "media-type spelled with a dash",
			toml: "[image]\n" + tags + `digest = "` + testDigest + `"
media-type = "application/vnd.docker.distribution.manifest.v2+json"
`,
			want: Image{Tags: both, Digest: testDigest, MediaType: "application/vnd.docker.distribution.manifest.v2+json"},
		},
		{
			name: "build table and unknown keys are ignored",
			toml: `schema-version = 3
[build]
  [[build.bom]]
    name = "jre"
    [build.bom.metadata]
      version = "17"
[image]
` + tags + `digest = "` + testDigest + `"
annotations = { "org.example/x" = "y" }
sbom = ["a", 1]
[image.future]
  key = true
[future]
x = 1
`,
			want: Image{Tags: both, Digest: testDigest},
		},
		{
			name: "sha512 digest",
			toml: "[image]\n" + tags + `digest = "` + testSHA512 + `"` + "\n",
			want: Image{Tags: both, Digest: testSHA512},
		},
		{
			name: "digest and image ID together",
			toml: "[image]\n" + tags + `digest = "` + testDigest + `"
image_id = "` + testImageID + `"
`,
			want: Image{Tags: both, Digest: testDigest, ImageID: testImageID},
		},
		{
			name: "empty strings count as absent",
			toml: "[image]\n" + tags + `digest = ""
image_id = "9c0e1895b90f"
image-id = ""
media_type = ""
`,
			want: Image{Tags: both, ImageID: "9c0e1895b90f"},
		},
		{
			name: "zero manifest size means unknown",
			toml: "[image]\n" + tags + `digest = "` + testDigest + `"
manifest_size = 0
`,
			want: Image{Tags: both, Digest: testDigest},
		},
		{
			name: "references kept as written: short names, digest references, ports",
			toml: `[image]
tags = ["ubuntu", "app:1", "localhost:5000/a/b:c", "reg.example.com/app@` + testDigest + `", "reg.example.com/app:v1@` + testDigest + `"]
digest = "` + testDigest + `"
`,
			want: Image{
				Tags:   []string{"ubuntu", "app:1", "localhost:5000/a/b:c", "reg.example.com/app@" + testDigest, "reg.example.com/app:v1@" + testDigest},
				Digest: testDigest,
			},
		},
		{
			name: "keys unindented, CRLF line ends, comments",
			toml: "# written on Windows\r\n[image]\r\ntags = [\"" + testTag + "\"] # primary\r\ndigest = \"" + testDigest + "\"\r\n",
			want: Image{Tags: []string{testTag}, Digest: testDigest},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse("report.toml", []byte(tc.toml))
			assert.NilError(t, err)
			assert.DeepEqual(t, r.Image, tc.want)
		})
	}
}

func TestParseRejects(t *testing.T) {
	tags := `tags = ["` + testTag + `"]` + "\n"
	registry := "[image]\n" + tags + `digest = "` + testDigest + `"` + "\n"
	tests := []struct {
		name string
		toml string
		want []string // substrings of the error
	}{
		{"not TOML", "[image]\ntags = [\"a\"]\ndigest = sha256\n", []string{"line 3, column 10: not valid TOML: expected value"}},
		{"unterminated table name", "[image\ntags = 1\n", []string{"line 2, column 7", "not valid TOML"}},
		{"not TOML later on", registry + "manifest_size = = 3\n", []string{"line 4, column 17", "not valid TOML"}},
		{"JSON", `{"image": {"tags": []}}`, []string{"line 1, column 1", "not valid TOML"}},
		{"duplicate key", registry + `digest = "` + testDigest + `"` + "\n", []string{"line 4", "already been defined"}},
		{"invalid UTF-8", "[image]\ntags = [\"a\xff\"]\n", []string{"line 2", "UTF-8"}},
		{"empty file", "", []string{"no [image] table"}},
		{"no image table", "[build]\nx = 1\n", []string{"no [image] table"}},
		{"image is not a table", "image = \"app:latest\"\n", []string{"image is a string, want an [image] table"}},
		{"image is an array of tables", "[[image]]\n" + tags, []string{"image is an array of tables"}},
		{"image table is keyed case-sensitively", "[IMAGE]\n" + tags + `digest = "` + testDigest + `"` + "\n", []string{"no [image] table"}},
		{"tags missing", "[image]\ndigest = \"" + testDigest + "\"\n", []string{"[image] tags: missing"}},
		{"tags empty", "[image]\ntags = []\ndigest = \"" + testDigest + "\"\n", []string{"[image] tags: empty"}},
		{"tags a string", "[image]\ntags = \"" + testTag + "\"\ndigest = \"" + testDigest + "\"\n", []string{"[image] tags: is a string, want an array of strings"}},
		{"tags an array of tables", "[[image.tags]]\nx = 1\n", []string{"[image] tags: is an array of tables"}},
		{"tag not a string", "[image]\ntags = [\"" + testTag + "\", 3]\ndigest = \"" + testDigest + "\"\n", []string{"[image] tags[1]: is an integer, want a string"}},
		{"tag empty string", "[image]\ntags = [\"" + testTag + "\", \"\"]\ndigest = \"" + testDigest + "\"\n", []string{"[image] tags[1]: empty string"}},
		{"tag with upper case repository", "[image]\ntags = [\"Registry.example.com/Team/App:latest\"]\ndigest = \"" + testDigest + "\"\n", []string{`[image] tags[0]: "Registry.example.com/Team/App:latest": not a valid image reference: repository can only contain`}},
		{"tag with a space", "[image]\ntags = [\" app:latest\"]\ndigest = \"" + testDigest + "\"\n", []string{`tags[0]: " app:latest": not a valid image reference`}},
		{"tag with empty tag", "[image]\ntags = [\"app:\"]\ndigest = \"" + testDigest + "\"\n", []string{`tags[0]: "app:": not a valid image reference`}},
		{"digest reference with a bad digest", "[image]\ntags = [\"app@sha256:abc\"]\ndigest = \"" + testDigest + "\"\n", []string{`tags[0]: "app@sha256:abc": not a valid image reference`}},
		{"digest without algorithm", "[image]\n" + tags + "digest = \"" + testHex + "\"\n", []string{`[image] digest "` + testHex + `": want algorithm:hex`}},
		{"digest too short", "[image]\n" + tags + "digest = \"sha256:abc\"\n", []string{`[image] digest "sha256:abc": want sha256:<64 lowercase hex digits>`}},
		{"digest upper case", "[image]\n" + tags + "digest = \"" + strings.ToUpper(testDigest[:7]) + strings.ToUpper(testDigest[7:]) + "\"\n", []string{"[image] digest", "unsupported algorithm \"SHA256\""}},
		{"digest hex upper case", "[image]\n" + tags + "digest = \"sha256:" + strings.ToUpper(testDigest[7:]) + "\"\n", []string{"want sha256:<64 lowercase hex digits>"}},
		{"sha512 digest of sha256 length", "[image]\n" + tags + "digest = \"sha512:" + testDigest[7:] + "\"\n", []string{"want sha512:<128 lowercase hex digits>"}},
		{"digest unknown algorithm", "[image]\n" + tags + "digest = \"md5:d41d8cd98f00b204e9800998ecf8427e\"\n", []string{`unsupported algorithm "md5", want sha256 or sha512`}},
		{"digest not a string", "[image]\n" + tags + "digest = 3\n", []string{"[image] digest: is an integer, want a string"}},
		{"image_id too short", "[image]\n" + tags + "image_id = \"9c0e1895b90\"\n", []string{`[image] image_id "9c0e1895b90": want sha256:<64 lowercase hex digits>`}},
		{"image_id too long", "[image]\n" + tags + "image_id = \"" + testHex + "0\"\n", []string{`[image] image_id "` + testHex + `0"`}},
		{"image-id not hex", "[image]\n" + tags + "image-id = \"some-image-id\"\n", []string{`[image] image-id "some-image-id": want`}},
		{"image_id upper case", "[image]\n" + tags + "image_id = \"9C0E1895B90F\"\n", []string{`[image] image_id "9C0E1895B90F"`}},
		{"image_id other algorithm", "[image]\n" + tags + "image_id = \"sha512:" + testHex + "\"\n", []string{`[image] image_id "sha512:`}},
		{"image-id not a string", "[image]\n" + tags + "image-id = true\n", []string{"[image] image-id: is a boolean, want a string"}},
		{"image_id spellings disagree", "[image]\n" + tags + "image_id = \"" + testImageID + "\"\nimage-id = \"aaaaaaaaaaaa\"\n", []string{`[image] image_id "` + testImageID + `" and image-id "aaaaaaaaaaaa" disagree`}},
		{"neither digest nor image_id", "[image]\n" + tags + "manifest_size = 3\n", []string{"[image] has neither digest nor image_id"}},
		{"neither, empty strings", "[image]\n" + tags + "digest = \"\"\nimage-id = \"\"\n", []string{"[image] has neither digest nor image_id"}},
		{"manifest_size negative", registry + "manifest_size = -1\n", []string{"[image] manifest_size -1: must not be negative"}},
		{"manifest-size negative quoted", registry + "manifest-size = \"-5\"\n", []string{"[image] manifest-size -5: must not be negative"}},
		{"manifest_size a float", registry + "manifest_size = 12.5\n", []string{"[image] manifest_size: is a float, want a whole number of bytes"}},
		{"manifest_size a word", registry + "manifest_size = \"big\"\n", []string{`[image] manifest_size "big": want a whole number of bytes`}},
		{"manifest-size empty string", registry + "manifest-size = \"\"\n", []string{`[image] manifest-size "": want a whole number of bytes`}},
		{"manifest_size overflows", registry + "manifest_size = \"99999999999999999999\"\n", []string{`manifest_size "99999999999999999999": want a whole number`}},
		{"manifest_size a boolean", registry + "manifest_size = true\n", []string{"[image] manifest_size: is a boolean"}},
		{"manifest size spellings disagree", registry + "manifest_size = 1\nmanifest-size = \"2\"\n", []string{"[image] manifest_size 1 and manifest-size 2 disagree"}},
		{"media_type without subtype", registry + "media_type = \"json\"\n", []string{`[image] media_type "json": not a media type`}},
		{"media_type with parameters", registry + "media_type = \"application/json; charset=utf-8\"\n", []string{`[image] media_type "application/json; charset=utf-8": not a media type`}},
		{"media-type with empty subtype", registry + "media-type = \"application/\"\n", []string{`[image] media-type "application/": not a media type`}},
		{"media_type not a string", registry + "media_type = 1\n", []string{"[image] media_type: is an integer, want a string"}},
		{"media type spellings disagree", registry + "media_type = \"a/b\"\nmedia-type = \"a/c\"\n", []string{`[image] media_type "a/b" and media-type "a/c" disagree`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := filepath.Join("layers", "report.toml")
			r, err := Parse(name, []byte(tc.toml))
			assert.Check(t, is.Nil(r))
			assertInvalid(t, err, "report "+name+": ")
			for _, want := range tc.want {
				assert.Check(t, is.ErrorContains(err, want))
			}
		})
	}
}

// assertInvalid checks the properties every input error has: it wraps
// ErrInvalid, starts with prefix (which names the file) and is one line.
func assertInvalid(t *testing.T, err error, prefix string) {
	t.Helper()
	assert.Assert(t, err != nil, "want an error")
	assert.Check(t, errors.Is(err, ErrInvalid), "error does not wrap ErrInvalid: %v", err)
	assert.Check(t, strings.HasPrefix(err.Error(), prefix), "error %q does not start with %q", err, prefix)
	assert.Check(t, !strings.ContainsAny(err.Error(), "\r\n"), "error is not one line: %q", err)
}

func TestParseSyntaxErrorPosition(t *testing.T) {
	_, err := Parse("r.toml", []byte("[image]\ntags = [\"a\"\ndigest = 1\n"))
	assertInvalid(t, err, "report r.toml: line 3, column ")
}

func TestParseSizeLimit(t *testing.T) {
	data := make([]byte, MaxSize+1)
	_, err := Parse("big.toml", data)
	assertInvalid(t, err, "report big.toml: ")
	assert.Check(t, is.ErrorContains(err, "larger than the 4 MiB (4194304 bytes) limit"))
}

func TestParseManyTags(t *testing.T) {
	data, want := manyTags(5000)
	assert.Assert(t, len(data) < MaxSize)
	r, err := Parse("many.toml", data)
	assert.NilError(t, err)
	assert.DeepEqual(t, r.Image.Tags, want)
}

// manyTags returns a registry report with n tags, and the tags.
func manyTags(n int) ([]byte, []string) {
	tags := make([]string, n)
	quoted := make([]string, n)
	for i := range tags {
		tags[i] = fmt.Sprintf("registry.example.com/some-team/some-application:build-%06d", i)
		quoted[i] = `"` + tags[i] + `"`
	}
	data := "[image]\ntags = [" + strings.Join(quoted, ", ") + "]\ndigest = \"" + testDigest + "\"\nmanifest_size = 1083\n"
	return []byte(data), tags
}

func TestReadFixtures(t *testing.T) {
	tests := []struct {
		file string
		want Image
	}{
		{
			file: "lifecycle/registry.toml",
			want: Image{Tags: []string{testTag, testTag2}, Digest: testDigest, ManifestSize: 1083},
		},
		{
			file: "lifecycle/daemon.toml",
			want: Image{Tags: []string{"index.docker.io/library/app:latest", "index.docker.io/library/app:1.4.2"}, ImageID: testImageID, ManifestSize: 1083},
		},
		{
			file: "lifecycle/spec-example.toml",
			want: Image{Tags: []string{testTag}, Digest: testDigest, ManifestSize: 1083},
		},
		{
			file: "rfc/registry.toml",
			want: Image{Tags: []string{"index.docker.io/image/name:latest", "index.docker.io/image/name:other-tag"}, Digest: testDigest},
		},
		{
			file: "rfc/daemon.toml",
			want: Image{Tags: []string{"index.docker.io/image/name:latest", "index.docker.io/image/name:other-tag"}, ImageID: "9c0e1895b90f"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			r, err := Read(filepath.Join("testdata", tc.file))
			assert.NilError(t, err)
			assert.DeepEqual(t, r.Image, tc.want)
			assert.Equal(t, r.Image.IsDaemon(), tc.want.Digest == "")
		})
	}
}

func TestReadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.toml")
	_, err := Read(path)
	assertInvalid(t, err, "report "+path+": ")
	assert.Check(t, errors.Is(err, fs.ErrNotExist))
	assert.Check(t, is.ErrorContains(err, "the export did not finish, so no report was written"))
}

func TestReadDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := Read(dir)
	assertInvalid(t, err, "report "+dir+": ")
	assert.Check(t, is.ErrorContains(err, "is a directory"))
}

// TestReadBoundsMemory reads a 100 MiB (sparse) file: it must be refused
// after reading at most MaxSize+1 bytes.
func TestReadBoundsMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.toml")
	f, err := os.Create(path)
	assert.NilError(t, err)
	assert.NilError(t, f.Truncate(100<<20))
	assert.NilError(t, f.Close())

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = Read(path)
	runtime.ReadMemStats(&after)

	assertInvalid(t, err, "report "+path+": ")
	assert.Check(t, is.ErrorContains(err, "limit"))
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("Read allocated %d bytes for a 100 MiB file", allocated)
	assert.Check(t, allocated < 2*MaxSize, "Read allocated %d bytes for a 100 MiB file", allocated)
}

func TestReadManyTags(t *testing.T) {
	data, want := manyTags(5000)
	path := filepath.Join(t.TempDir(), "report.toml")
	assert.NilError(t, os.WriteFile(path, data, 0o644))
	r, err := Read(path)
	assert.NilError(t, err)
	assert.Equal(t, len(r.Image.Tags), len(want))
}
