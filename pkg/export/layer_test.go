package export

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/exportreport/exportreport/pkg/badinput"
)

// layerFixture writes a directory with every kind of entry -append takes,
// under parent, with file mtimes set from mtime (which must not matter).
func layerFixture(t *testing.T, parent string, mtime time.Time) string {
	t.Helper()
	root := filepath.Join(parent, "site")
	files := []struct {
		path, content string
		mode          os.FileMode
	}{
		{"bin/tool", "#!/bin/sh\necho hi\n", 0o755},
		{"etc/app.conf", "key=value\n", 0o640},
		{"etc/secret", "s3cr3t\n", 0o600},
		{"index.html", "<h1>hello</h1>\n", 0o644},
		{"sbin/suid", "x", 0o755 | os.ModeSetuid},
	}
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.path))
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(f.content), 0o600))
		assert.NilError(t, os.Chmod(p, f.mode))
	}
	assert.NilError(t, os.Mkdir(filepath.Join(root, "empty"), 0o700))
	assert.NilError(t, os.Chmod(filepath.Join(root, "empty"), 0o700))
	assert.NilError(t, os.Chmod(root, 0o750))
	// Symlinks are stored as they are, never followed, even when they point
	// outside the directory.
	outside := filepath.Join(parent, "outside")
	srcWriteFile(t, filepath.Join(outside, "must-not-be-read.txt"), "outside the directory")
	assert.NilError(t, os.Symlink("etc/app.conf", filepath.Join(root, "conf-link")))
	assert.NilError(t, os.Symlink("/etc/passwd", filepath.Join(root, "passwd-link")))
	assert.NilError(t, os.Symlink("../outside", filepath.Join(root, "outside-dir-link")))
	assert.NilError(t, os.Symlink("dangling/target", filepath.Join(root, "dangling")))
	assert.NilError(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		mtime = mtime.Add(time.Hour)
		return os.Chtimes(p, mtime, mtime)
	}))
	return root
}

// tarListing reads a layer back: one line per entry with everything that
// matters for reproducibility.
func tarListing(t *testing.T, l v1.Layer) string {
	t.Helper()
	rc, err := l.Uncompressed()
	assert.NilError(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var b strings.Builder
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		fmt.Fprintf(&b, "%c %-28s %05o %d:%d %q:%q %s", h.Typeflag, h.Name, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime.UTC().Format(time.RFC3339))
		switch h.Typeflag {
		case tar.TypeSymlink:
			fmt.Fprintf(&b, " -> %s", h.Linkname)
		case tar.TypeReg:
			sum := sha256.New()
			n, err := io.Copy(sum, tr)
			assert.NilError(t, err)
			fmt.Fprintf(&b, " %d bytes sha256:%s", n, hex.EncodeToString(sum.Sum(nil))[:12])
		}
		b.WriteString("\n")
	}
	return b.String()
}

func buildLayer(t *testing.T, spec AppendSpec, created time.Time) v1.Layer {
	t.Helper()
	dl, err := scanDir(spec, created)
	assert.NilError(t, err)
	l, err := dl.layer(context.Background())
	assert.NilError(t, err)
	return l
}

func TestLayerContents(t *testing.T) {
	created := time.Unix(1700000000, 0).UTC()
	tests := []struct {
		name   string
		dest   string
		golden string
	}{
		{"at the root", "", "layer-root.golden"},
		{"under a destination", "/opt/app", "layer-dest.golden"},
		{"destination without leading slash", "opt/app/", "layer-dest.golden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := layerFixture(t, t.TempDir(), time.Unix(1234567890, 0))
			l := buildLayer(t, AppendSpec{Dir: dir, Dest: tc.dest}, created)
			got := tarListing(t, l)
			golden.Assert(t, got, tc.golden)
			assert.Check(t, !strings.Contains(got, "must-not-be-read"), "a symlink was followed:\n%s", got)
			mt, err := l.MediaType()
			assert.NilError(t, err)
			assert.Check(t, is.Contains(string(mt), "gzip"))
		})
	}
}

func TestLayerRootSymlinkFollowed(t *testing.T) {
	// The -append DIR itself may be a symlink to a directory (only entries
	// inside it are never followed).
	parent := t.TempDir()
	dir := layerFixture(t, parent, time.Unix(1, 0))
	link := filepath.Join(parent, "link")
	assert.NilError(t, os.Symlink(dir, link))
	created := time.Unix(1700000000, 0)
	viaLink := buildLayer(t, AppendSpec{Dir: link, Dest: "/x"}, created)
	direct := buildLayer(t, AppendSpec{Dir: dir, Dest: "/x"}, created)
	assert.Equal(t, srcDigest(t, viaLink), srcDigest(t, direct))
}

func TestLayerBadInput(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "file")
	srcWriteFile(t, file, "x")
	withSocket := filepath.Join(parent, "withsocket")
	assert.NilError(t, os.Mkdir(withSocket, 0o755))
	ln, err := net.Listen("unix", filepath.Join(withSocket, "sock"))
	assert.NilError(t, err)
	t.Cleanup(func() { ln.Close() })

	tests := []struct {
		name    string
		spec    AppendSpec
		wantErr string
	}{
		{"missing directory", AppendSpec{Dir: filepath.Join(parent, "nope"), Dest: "/app"},
			fmt.Sprintf(`-append "%s/nope:/app": %s/nope does not exist`, parent, parent)},
		{"a file", AppendSpec{Dir: file}, fmt.Sprintf(`-append %q: %s is not a directory`, file, file)},
		{"a socket inside", AppendSpec{Dir: withSocket}, "sock is a socket; only regular files, directories and symlinks can be added"},
		{"destination climbing out", AppendSpec{Dir: parent, Dest: "/app/../../etc"}, `destination "/app/../../etc" must not contain '..'`},
		{"no directory", AppendSpec{Dest: "/app"}, "no directory given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scanDir(tc.spec, time.Unix(0, 0))
			assert.ErrorIs(t, err, badinput.Err)
			assert.ErrorContains(t, err, tc.wantErr)
			// Apply reports the same, before touching the image.
			_, err = Apply(context.Background(), srcImage(t, ""), Edits{Append: []AppendSpec{tc.spec}}, nil)
			assert.ErrorIs(t, err, badinput.Err)
			assert.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestLayerStreams checks that a layer much larger than what the heap may
// hold is built without holding it: the heap in use stays far below the
// file's size while its digest is computed and while it is read out.
func TestLayerStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPING: writes and compresses a 64 MiB file (-short)")
	}
	const size = 64 << 20
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	assert.NilError(t, err)
	rng := rand.NewChaCha8([32]byte{1, 2, 3}) // incompressible, so the compressed layer is large too
	buf := make([]byte, 1<<20)
	for range size / len(buf) {
		_, _ = rng.Read(buf)
		_, err := f.Write(buf)
		assert.NilError(t, err)
	}
	assert.NilError(t, f.Close())
	buf = nil

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse

	var (
		mu   sync.Mutex
		peak uint64
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	go func() { // sample the heap while the layer is built and read
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				mu.Lock()
				peak = max(peak, ms.HeapInuse)
				mu.Unlock()
			}
		}
	}()

	l := buildLayer(t, AppendSpec{Dir: dir, Dest: "/data"}, time.Unix(0, 0))
	rc, err := l.Compressed()
	assert.NilError(t, err)
	n, err := io.Copy(io.Discard, rc)
	assert.NilError(t, err)
	assert.NilError(t, rc.Close())
	close(stop)
	<-done

	wantSize, err := l.Size()
	assert.NilError(t, err)
	assert.Equal(t, n, wantSize)
	assert.Assert(t, n > size, "compressed %d bytes of random data into less than %d", n, size)
	mu.Lock()
	defer mu.Unlock()
	grew := int64(peak) - int64(base)
	t.Logf("heap in use grew by at most %d KiB for a %d MiB file", grew>>10, size>>20)
	assert.Assert(t, grew < size/4, "heap in use grew by %d bytes while streaming a %d-byte file", grew, size)
}
