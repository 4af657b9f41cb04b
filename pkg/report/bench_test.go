package report

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	lifecycle, err := os.ReadFile(filepath.Join("testdata", "lifecycle", "registry.toml"))
	if err != nil {
		b.Fatal(err)
	}
	many, _ := manyTags(5000)
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"lifecycle-registry", lifecycle},
		{"5000-tags", many},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse("report.toml", bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	many, _ := manyTags(5000)
	big, err := Parse("many.toml", many)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		report *Report
	}{
		{"registry", registryReport()},
		{"5000-tags", big},
	} {
		for _, schema := range []Schema{SchemaRFC, SchemaPlatform} {
			b.Run(bc.name+"-"+string(schema), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := Encode(io.Discard, bc.report, schema); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
