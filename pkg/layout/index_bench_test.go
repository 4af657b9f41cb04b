package layout_test

import (
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/exportreport/exportreport/pkg/layout"
)

// The index.json report2results writes: built from the report's tags (Index),
// merged into what the layout holds (Merge) and written atomically with
// oci-layout (Write; WriteDurable also fsyncs), for a typical report (two
// tags) and a large one.
func BenchmarkIndex(b *testing.B) {
	desc := v1.Descriptor{
		MediaType: types.OCIImageIndex,
		Size:      1234,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: "4d3c1c2b0f4fbd3f4f0b8a5c6e0c8f2a6b7e1d9c3a5b7d9e1f3a5c7e9b1d3f5a"},
	}
	for _, n := range []int{2, 100} {
		tags := make([]string, n)
		for i := range tags {
			tags[i] = fmt.Sprintf("registry.example.com/team/app:v%d", i)
		}
		b.Run(fmt.Sprintf("build-%d-tags", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				idx, err := layout.Index(tags, desc)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := idx.RawManifest(); err != nil {
					b.Fatal(err)
				}
			}
		})
		for name, write := range map[string]func(string, []byte) error{"write": layout.Write, "write-durable": layout.WriteDurable} {
			b.Run(fmt.Sprintf("%s-%d-tags", name, n), func(b *testing.B) {
				idx, err := layout.Index(tags, desc)
				if err != nil {
					b.Fatal(err)
				}
				dir := b.TempDir()
				b.ReportAllocs()
				for b.Loop() {
					raw, err := layout.Merge(dir, idx) // what is there, merged
					if err != nil {
						b.Fatal(err)
					}
					if err := write(dir, raw); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
