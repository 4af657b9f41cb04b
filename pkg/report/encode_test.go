package report

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
)

// encodeCases are the reports whose encodings are golden files
// testdata/encode/<schema>-<name>.toml.
var encodeCases = []struct {
	name   string
	report Report
}{
	{"registry", Report{Image: Image{
		Tags:         []string{testTag, testTag2},
		Digest:       testDigest,
		ManifestSize: 1083,
		MediaType:    "application/vnd.oci.image.manifest.v1+json",
	}}},
	{"registry-index", Report{Image: Image{
		Tags:         []string{testTag},
		Digest:       testDigest,
		ManifestSize: 2254,
		MediaType:    testIndexType,
	}}},
	{"registry-lifecycle", Report{Image: Image{
		Tags:   []string{testTag},
		Digest: testDigest,
	}}},
	{"daemon", Report{Image: Image{
		Tags:         []string{"app:latest", "app:1.4.2"},
		ImageID:      testImageID,
		ManifestSize: 1083,
	}}},
	{"daemon-short-id", Report{Image: Image{
		Tags:    []string{"index.docker.io/image/name:latest"},
		ImageID: "9c0e1895b90f",
	}}},
}

func TestEncodeGolden(t *testing.T) {
	for _, schema := range []Schema{SchemaRFC, SchemaPlatform} {
		for _, tc := range encodeCases {
			t.Run(string(schema)+"-"+tc.name, func(t *testing.T) {
				var buf bytes.Buffer
				assert.NilError(t, Encode(&buf, &tc.report, schema))
				golden.Assert(t, buf.String(), filepath.Join("encode", string(schema)+"-"+tc.name+".toml"))
			})
		}
	}
}

func TestEncodeDefaultSchemaIsRFC(t *testing.T) {
	r := encodeCases[0].report
	var def, rfc bytes.Buffer
	assert.NilError(t, Encode(&def, &r, ""))
	assert.NilError(t, Encode(&rfc, &r, SchemaRFC))
	assert.Equal(t, def.String(), rfc.String())
}

// TestEncodeNormalisesImageID: a full image ID given without "sha256:" is
// written as "sha256:<hex>" (rfc) and as hex (platform).
func TestEncodeNormalisesImageID(t *testing.T) {
	r := Report{Image: Image{Tags: []string{"app"}, ImageID: testHex}}
	var rfc, platform bytes.Buffer
	assert.NilError(t, Encode(&rfc, &r, SchemaRFC))
	assert.NilError(t, Encode(&platform, &r, SchemaPlatform))
	assert.Check(t, is.Contains(rfc.String(), `image_id = "`+testImageID+`"`))
	assert.Check(t, is.Contains(platform.String(), `image-id = "`+testHex+`"`))
}

func TestEncodeRejects(t *testing.T) {
	valid := Report{Image: Image{Tags: []string{testTag}, Digest: testDigest}}
	tests := []struct {
		name   string
		report *Report
		schema Schema
		want   string
	}{
		{"unknown schema", &valid, "json", `report: unknown schema "json" (want rfc or platform)`},
		{"schema is case-sensitive", &valid, "RFC", `unknown schema "RFC"`},
		{"nil report", nil, SchemaRFC, "report: no report"},
		{"invalid report", &Report{Image: Image{Tags: []string{testTag}}}, SchemaPlatform, "report: [image] has neither digest nor image_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Encode(&buf, tc.report, tc.schema)
			assertInvalid(t, err, "report: ")
			assert.Check(t, is.ErrorContains(err, tc.want))
			assert.Check(t, is.Equal(buf.Len(), 0), "wrote %q", buf.String())
		})
	}
}

func TestEncodeWriterError(t *testing.T) {
	r := encodeCases[0].report
	boom := errors.New("disk full")
	err := Encode(failingWriter{boom}, &r, SchemaRFC)
	assert.Check(t, errors.Is(err, boom))
	assert.Check(t, !errors.Is(err, ErrInvalid))
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// The Buildpacks lifecycle's report type, mirrored field for field with its
// toml tags from github.com/buildpacks/lifecycle v0.21 (platform/files/report.go;
// BOMEntry from buildpack/files.go, GroupElement from buildpack/bp_descriptor.go),
// the type kpack decodes report.toml into. Not imported: it would pull in the
// whole lifecycle module.
type lifecycleReport struct {
	Build lifecycleBuildReport `toml:"build,omitempty"`
	Image lifecycleImageReport `toml:"image"`
}

type lifecycleBuildReport struct {
	BOM []lifecycleBOMEntry `toml:"bom"`
}

type lifecycleImageReport struct {
	Tags         []string `toml:"tags"`
	ImageID      string   `toml:"image-id,omitempty"`
	Digest       string   `toml:"digest,omitempty"`
	ManifestSize int64    `toml:"manifest-size,omitzero"`
}

type lifecycleBOMEntry struct {
	lifecycleRequire
	Buildpack lifecycleGroupElement `toml:"buildpack"`
}

type lifecycleRequire struct {
	Name     string         `toml:"name"`
	Version  string         `toml:"version,omitempty"`
	Metadata map[string]any `toml:"metadata"`
}

type lifecycleGroupElement struct {
	ID        string `toml:"id"`
	Version   string `toml:"version"`
	API       string `toml:"api,omitempty"`
	Homepage  string `toml:"homepage,omitempty"`
	Extension bool   `toml:"extension,omitempty"`
	Optional  bool   `toml:"optional,omitempty"`
}

// TestPlatformSchemaIsLifecycles: our platform output decodes into the
// lifecycle's type with nothing left over, carries the same values, and is
// byte for byte what the lifecycle's encoder (BurntSushi/toml, as in
// lifecycle's internal/encoding.WriteTOML) writes for that value.
func TestPlatformSchemaIsLifecycles(t *testing.T) {
	for _, tc := range encodeCases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			assert.NilError(t, Encode(&buf, &tc.report, SchemaPlatform))

			var got lifecycleReport
			md, err := toml.Decode(buf.String(), &got)
			assert.NilError(t, err)
			assert.Check(t, is.Len(md.Undecoded(), 0), "undecoded keys: %v", md.Undecoded())
			want := lifecycleImageReport{
				Tags:         tc.report.Image.Tags,
				ImageID:      strings.TrimPrefix(tc.report.Image.ImageID, "sha256:"),
				Digest:       tc.report.Image.Digest,
				ManifestSize: tc.report.Image.ManifestSize,
			}
			assert.DeepEqual(t, got.Image, want)
			assert.Check(t, is.Len(got.Build.BOM, 0))

			var lifecycle bytes.Buffer
			assert.NilError(t, toml.NewEncoder(&lifecycle).Encode(lifecycleReport{Image: want}))
			assert.Equal(t, buf.String(), lifecycle.String())
		})
	}
}

// TestLifecycleFixturesAreFaithful: the fixtures decode into the lifecycle's
// type with nothing left over, so they hold only what the lifecycle writes.
func TestLifecycleFixturesAreFaithful(t *testing.T) {
	for _, file := range []string{"registry.toml", "daemon.toml", "spec-example.toml"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "lifecycle", file))
			assert.NilError(t, err)
			var lr lifecycleReport
			md, err := toml.Decode(string(data), &lr)
			if file == "spec-example.toml" {
				// The spec quotes manifest-size; the lifecycle's int64 refuses
				// that, which is why Read accepts both.
				assert.Check(t, is.ErrorContains(err, "manifest-size"))
				return
			}
			assert.NilError(t, err)
			assert.Check(t, is.Len(md.Undecoded(), 0), "undecoded keys: %v", md.Undecoded())
			assert.Check(t, len(lr.Image.Tags) > 0)
		})
	}
	t.Run("registry.toml has a BOM", func(t *testing.T) {
		var lr lifecycleReport
		_, err := toml.DecodeFile(filepath.Join("testdata", "lifecycle", "registry.toml"), &lr)
		assert.NilError(t, err)
		assert.Check(t, is.Len(lr.Build.BOM, 2))
		assert.Check(t, is.Equal(lr.Build.BOM[0].Buildpack.ID, "paketo-buildpacks/bellsoft-liberica"))
	})
}

// TestRFCRoundTrip: what Encode writes in the rfc schema, Parse reads back
// as the same report (full image IDs normalised).
func TestRFCRoundTrip(t *testing.T) {
	for _, tc := range encodeCases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			assert.NilError(t, Encode(&buf, &tc.report, SchemaRFC))
			r, err := Parse("report.toml", buf.Bytes())
			assert.NilError(t, err)
			assert.DeepEqual(t, *r, tc.report)
		})
	}
}

// TestPlatformRoundTrip: the platform schema loses only the media type.
func TestPlatformRoundTrip(t *testing.T) {
	for _, tc := range encodeCases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			assert.NilError(t, Encode(&buf, &tc.report, SchemaPlatform))
			r, err := Parse("report.toml", buf.Bytes())
			assert.NilError(t, err)
			want := tc.report
			want.Image.MediaType = ""
			if hex := want.Image.ImageIDHex(); hex != "" && len(hex) < 64 {
				want.Image.ImageID = hex // short IDs are kept as written: hex
			}
			assert.DeepEqual(t, *r, want)
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		image Image
		want  string // "" means valid
	}{
		{"registry", Image{Tags: []string{testTag}, Digest: testDigest}, ""},
		{"daemon full hex", Image{Tags: []string{testTag}, ImageID: testHex}, ""},
		{"daemon short", Image{Tags: []string{testTag}, ImageID: "9c0e1895b90f"}, ""},
		{"no tags", Image{Digest: testDigest}, "report: [image] tags: empty"},
		{"empty tag", Image{Tags: []string{testTag, ""}, Digest: testDigest}, "report: [image] tags[1]: empty string"},
		{"bad tag", Image{Tags: []string{"a b"}, Digest: testDigest}, `report: [image] tags[0]: "a b": not a valid image reference`},
		// go-containerregistry accepts it; TOML cannot hold it (found by
		// export's FuzzDestinationReference).
		{"tag not UTF-8", Image{Tags: []string{"\xe1./0"}, Digest: testDigest}, `report: [image] tags[0]: "\xe1./0": not valid UTF-8`},
		{"bad digest", Image{Tags: []string{testTag}, Digest: "sha256:1"}, `report: [image] digest "sha256:1": want sha256:<64 lowercase hex digits>`},
		{"bad image ID", Image{Tags: []string{testTag}, ImageID: "x"}, `report: [image] image_id "x": want`},
		{"neither", Image{Tags: []string{testTag}}, "report: [image] has neither digest nor image_id"},
		{"negative size", Image{Tags: []string{testTag}, Digest: testDigest, ManifestSize: -1}, "report: [image] manifest_size -1: must not be negative"},
		{"bad media type", Image{Tags: []string{testTag}, Digest: testDigest, MediaType: "oci"}, `report: [image] media_type "oci": not a media type`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Report{Image: tc.image}
			err := r.Validate()
			if tc.want == "" {
				assert.NilError(t, err)
				return
			}
			assertInvalid(t, err, "report: ")
			assert.Check(t, is.ErrorContains(err, tc.want))
		})
	}
}

func TestValidateNil(t *testing.T) {
	var r *Report
	assertInvalid(t, r.Validate(), "report: no report")
}

func TestParseSchema(t *testing.T) {
	tests := []struct {
		in      string
		want    Schema
		wantErr string
	}{
		{"", SchemaRFC, ""},
		{"rfc", SchemaRFC, ""},
		{"platform", SchemaPlatform, ""},
		{"Platform", "", `unknown schema "Platform" (want rfc or platform)`},
		{"lifecycle", "", `unknown schema "lifecycle"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSchema(tc.in)
			if tc.wantErr != "" {
				assertInvalid(t, err, "report: ")
				assert.Check(t, is.ErrorContains(err, tc.wantErr))
				return
			}
			assert.NilError(t, err)
			assert.Equal(t, got, tc.want)

			var s Schema
			assert.NilError(t, s.Set(tc.in))
			assert.Equal(t, s, tc.want)
			assert.Equal(t, s.String(), string(tc.want))
		})
	}
}

func TestImageHelpers(t *testing.T) {
	assert.Check(t, Image{ImageID: testImageID}.IsDaemon())
	assert.Check(t, !Image{ImageID: testImageID, Digest: testDigest}.IsDaemon())
	assert.Check(t, !Image{Digest: testDigest}.IsDaemon())
	assert.Check(t, is.Equal(Image{ImageID: testImageID}.ImageIDHex(), testHex))
	assert.Check(t, is.Equal(Image{ImageID: "9c0e1895b90f"}.ImageIDHex(), "9c0e1895b90f"))
	assert.Check(t, is.Equal(Image{}.ImageIDHex(), ""))
}
