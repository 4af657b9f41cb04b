package pushed

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/exportreport/exportreport/pkg/badinput"
	"github.com/exportreport/exportreport/pkg/report"
)

// FuzzFrom feeds any bytes to the detector and to every parser: none may
// panic; an error is one line, the input's fault; what parses is images
// with references that parse and sha256 digests (or, from a report, none).
func FuzzFrom(f *testing.F) {
	for _, fx := range fixtures {
		data, err := os.ReadFile(filepath.Join("testdata", fx.path))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("r.example/a@sha256:" + strings.Repeat("0", 64)))
	f.Add([]byte(`{"t":{"containerimage.digest":"sha256:` + strings.Repeat("0", 64) + `","image.name":"a/b:c"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range []Kind{Auto, Report, Refs, Digest, Buildx, Jib} {
			kind, imgs, err := Parse(k, "fuzz", data, Options{Image: "r.example/team/app:1"})
			if err != nil {
				if !errors.Is(err, badinput.Err) && !errors.Is(err, report.ErrInvalid) {
					t.Fatalf("%s: error not the input's fault: %v", k, err)
				}
				if strings.ContainsAny(err.Error(), "\r\n") {
					t.Fatalf("%s: error of more than one line: %q", k, err)
				}
				continue
			}
			if len(imgs) == 0 {
				t.Fatalf("%s (read as %s): no image and no error", k, kind)
			}
			for _, img := range imgs {
				if len(img.Refs) == 0 {
					t.Fatalf("%s: an image without references: %+v", k, img)
				}
				for _, r := range img.Refs {
					if kind != Report {
						if _, _, err := parseRef(r); err != nil {
							t.Fatalf("%s: reference %q does not parse: %v", k, r, err)
						}
					}
				}
				if img.Digest != "" && !digestLine.MatchString(img.Digest) && kind != Report {
					t.Fatalf("%s: digest %q", k, img.Digest)
				}
			}
		}
	})
}
