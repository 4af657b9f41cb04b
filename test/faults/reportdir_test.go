package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/exportreport/exportreport/test/distribution"
)

// listingMarker starts the line the wrapper script prints to stderr: the
// report directory's entries, as the export left them.
const listingMarker = "REPORT DIR HOLDS:"

// A report directory that is read-only, or on a full file system: the
// image is pushed, export-step exits 1 and says the image was pushed but the
// report could not be written, and nothing is left at the report path (no
// report, no temp file). Each export runs in its own mount namespace
// (unshare -m) with a tmpfs at the report directory, so nothing outlives it.
func TestReportDirUnwritable(t *testing.T) {
	t.Parallel()
	requireMountNamespace(t)
	reg := distribution.Start(t)
	src, want := newLayout(t)

	tests := []struct {
		name  string
		mount string // shell commands making $DIR unwritable
		errno string
	}{
		{name: "read-only", mount: `mount -t tmpfs -o ro,size=64k tmpfs "$DIR"`, errno: "read-only file system"},
		{name: "full", mount: `mount -t tmpfs -o size=16k tmpfs "$DIR" && { cat /dev/zero > "$DIR/filler" 2>/dev/null; true; }`,
			errno: "no space left on device"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "reports")
			assert.NilError(t, os.Mkdir(dir, 0o755))
			reportPath := filepath.Join(dir, "report.toml")
			tag := reg.Host() + "/unwritable/app:" + string(rune('a'+i))
			script := tc.mount + ` || exit 99
"$@"; code=$?
echo "` + listingMarker + `" $(ls -A "$DIR") >&2
exit $code`
			args := []string{"-m", "sh", "-c", script, "sh", exportStep, "-quiet", "-source", "oci:" + src,
				"-report", reportPath, "-insecure-registry", reg.Host(), tag}
			res := runCommand(t, []string{"DIR=" + dir}, "unshare", args...)
			assert.Assert(t, res.code != 99, "could not mount the tmpfs: %s", res.stderr)
			assert.Equal(t, res.code, 1, res.stderr)
			assert.Check(t, is.Equal(res.stdout, ""), "a digest on stdout although the export failed")
			msg, listing, _ := strings.Cut(res.stderr, listingMarker)
			assert.Check(t, is.Contains(msg, "image WAS pushed as "+tag+"@"+want.String()+", but the report could not be written"))
			assert.Check(t, is.Contains(msg, reportPath))
			assert.Check(t, is.Contains(msg, tc.errno))
			entries := strings.Fields(listing)
			if tc.name == "full" {
				assert.Check(t, is.DeepEqual(entries, []string{"filler"}))
			} else {
				assert.Check(t, is.Len(entries, 0))
			}
			// Nothing reached the real directory under the mount either.
			left, err := os.ReadDir(dir)
			assert.NilError(t, err)
			assert.Check(t, is.Len(left, 0))
			// The image was pushed, as the message says.
			assertServedDirect(t, reg, tag, want)
		})
	}
}

// requireMountNamespace skips (CI unset) or fails (CI set) when this
// process may not make a mount namespace with a tmpfs in it.
func requireMountNamespace(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		distribution.Unavailable(t, "unshare (util-linux) is not installed: %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", dir).CombinedOutput(); err != nil {
		distribution.Unavailable(t, "cannot mount a tmpfs in a new mount namespace (needs root or CAP_SYS_ADMIN): %v: %s", err, out)
	}
}
