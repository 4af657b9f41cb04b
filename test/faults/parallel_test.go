package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/BurntSushi/toml"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/test/distribution"
)

// 8 export-step processes at once against one registry: two push the same
// image to the same tag, three push different images (sharing base layers,
// so blob uploads race) to one repository under different tags, three push
// to repositories of their own with two tags each. Every export succeeds and
// every report matches what the registry serves for each of its tags.
func TestParallelExports(t *testing.T) {
	t.Parallel()
	reg := distribution.Start(t)
	base, err := random.Image(32<<10, 2)
	assert.NilError(t, err)

	type job struct {
		tags []string
		src  string
		want v1.Hash
	}
	images := map[int]struct {
		src  string
		want v1.Hash
	}{}
	image := func(i int) (string, v1.Hash) {
		if im, ok := images[i]; ok {
			return im.src, im.want
		}
		layer, err := random.Layer(16<<10, "application/vnd.docker.image.rootfs.diff.tar.gzip")
		assert.NilError(t, err)
		img, err := mutate.AppendLayers(base, layer)
		assert.NilError(t, err)
		dir := t.TempDir()
		p, err := layout.Write(dir, empty.Index)
		assert.NilError(t, err)
		assert.NilError(t, p.AppendImage(img))
		d, err := img.Digest()
		assert.NilError(t, err)
		images[i] = struct {
			src  string
			want v1.Hash
		}{dir, d}
		return dir, d
	}
	var jobs []job
	for i := 0; i < 8; i++ {
		var tags []string
		img := i
		switch {
		case i < 2:
			img = 0
			tags = []string{reg.Host() + "/parallel/shared:same"}
		case i < 5:
			tags = []string{fmt.Sprintf("%s/parallel/shared:tag%d", reg.Host(), i)}
		default:
			tags = []string{fmt.Sprintf("%s/parallel/own%d:v1", reg.Host(), i), fmt.Sprintf("%s/parallel/own%d:latest", reg.Host(), i)}
		}
		src, want := image(img)
		jobs = append(jobs, job{tags: tags, src: src, want: want})
	}

	reports := make([]string, len(jobs))
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		reports[i] = filepath.Join(t.TempDir(), "report.toml")
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = export(t, j.src, reports[i], reg.Host(), nil, j.tags...)
		}()
	}
	wg.Wait()

	for i, j := range jobs {
		assert.Check(t, is.Equal(results[i].code, 0), "export %d: %s", i, results[i].stderr)
		var r reportFile
		_, err := toml.DecodeFile(reports[i], &r)
		if !assert.Check(t, err, "export %d", i) {
			continue
		}
		assert.Check(t, is.DeepEqual(r.Image.Tags, j.tags), "export %d", i)
		assert.Check(t, is.Equal(r.Image.Digest, j.want.String()), "export %d", i)
		for _, tag := range j.tags {
			assertServedDirect(t, reg, tag, j.want)
		}
	}
}

// 8 report2results processes at once on one results directory: with their
// own -prefix each writes exactly its own report's results; with the same
// result names every file holds one whole value from one of the reports
// (no interleaving), and no temp file is left behind. (Which run's value
// wins each file is not defined: IMAGE_DIGEST and IMAGE_URL may then come
// from different reports; steps sharing a results dir need -prefix.)
func TestParallelReport2Results(t *testing.T) {
	t.Parallel()
	const n = 8
	reports := make([]string, n)
	digests := make([]string, n)
	urls := make([]string, n)
	for i := range reports {
		digests[i] = "sha256:" + strings.Repeat(fmt.Sprintf("%02x", i+1), 32)
		urls[i] = fmt.Sprintf("registry.example.com/team%d/%s:v%d", i, strings.Repeat(string(rune('a'+i)), 16), i)
		reports[i] = filepath.Join(t.TempDir(), "report.toml")
		content := fmt.Sprintf("[image]\ntags = [%q]\ndigest = %q\nmanifest_size = 1234\nmedia_type = \"application/vnd.oci.image.manifest.v1+json\"\n", urls[i], digests[i])
		assert.NilError(t, os.WriteFile(reports[i], []byte(content), 0o644))
	}

	// The results of all 8 share Tekton's 4096-byte budget in one directory:
	// two results each fit.
	runAll := func(t *testing.T, dir string, prefix func(i int) string) {
		var wg sync.WaitGroup
		codes := make([]result, n)
		for i := range reports {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := []string{"-offline", "-quiet", "-report", reports[i], "-results-dir", dir,
					"-results", "IMAGE_DIGEST,IMAGE_URL"}
				if p := prefix(i); p != "" {
					args = append(args, "-prefix", p)
				}
				codes[i] = runCommand(t, nil, report2results, args...)
			}()
		}
		wg.Wait()
		for i, r := range codes {
			assert.Check(t, is.Equal(r.code, 0), "report2results %d: %s", i, r.stderr)
		}
	}
	read := func(t *testing.T, path string) string {
		data, err := os.ReadFile(path)
		assert.NilError(t, err)
		return string(data)
	}

	t.Run("own prefixes", func(t *testing.T) {
		dir := t.TempDir()
		runAll(t, dir, func(i int) string { return fmt.Sprintf("P%d", i) })
		var names []string
		entries, err := os.ReadDir(dir)
		assert.NilError(t, err)
		for _, e := range entries {
			names = append(names, e.Name())
		}
		assert.Check(t, is.Len(names, 2*n), "files: %v", names)
		for i := 0; i < n; i++ {
			p := filepath.Join(dir, fmt.Sprintf("P%d_", i))
			assert.Check(t, is.Equal(read(t, p+"IMAGE_DIGEST"), digests[i]))
			assert.Check(t, is.Equal(read(t, p+"IMAGE_URL"), urls[i]))
		}
	})
	t.Run("same names", func(t *testing.T) {
		dir := t.TempDir()
		runAll(t, dir, func(int) string { return "" })
		entries, err := os.ReadDir(dir)
		assert.NilError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		assert.Check(t, is.DeepEqual(names, []string{"IMAGE_DIGEST", "IMAGE_URL"}))
		whole := func(name string, candidates []string) {
			got := read(t, filepath.Join(dir, name))
			for _, c := range candidates {
				if got == c {
					return
				}
			}
			t.Errorf("%s holds %q, not one whole value of a report", name, got)
		}
		whole("IMAGE_DIGEST", digests)
		whole("IMAGE_URL", urls)
	})
}
