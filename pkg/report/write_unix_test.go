//go:build linux

package report

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// unprivilegedEnv marks the copy of the test binary that
// TestWriteReadOnlyDir runs as an unprivileged user.
const unprivilegedEnv = "REPORT_TEST_UNPRIVILEGED"

// nobody is the user the unprivileged run uses.
const nobody = 65534

// TestWriteReadOnlyDir: writing into a directory we may not write to fails,
// names the path, leaves no temp file and the old report untouched. Root
// ignores permission bits, so as root the test reruns itself as nobody.
func TestWriteReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		if os.Getenv(unprivilegedEnv) != "" {
			t.Fatal("still root after switching to an unprivileged user")
		}
		runAsNobody(t, "^TestWriteReadOnlyDir$")
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "report.toml")
	assert.NilError(t, os.WriteFile(path, []byte("old"), 0o644))
	assert.NilError(t, os.Chmod(dir, 0o555))
	t.Cleanup(func() { os.Chmod(dir, 0o755) })

	err := Write(path, registryReport(), SchemaRFC)
	assert.Assert(t, err != nil, "write into a read-only directory succeeded")
	assert.Check(t, errors.Is(err, os.ErrPermission), "got %v", err)
	assert.Check(t, !errors.Is(err, ErrInvalid))
	assert.Check(t, is.ErrorContains(err, "write report "+path+": "))
	assert.DeepEqual(t, dirNames(t, dir), []string{"report.toml"})
	got, err := os.ReadFile(path)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(got), "old"))
}

// TestReadUnreadable: a report we may not read is an input error naming
// the file. As root the test reruns itself as nobody.
func TestReadUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		if os.Getenv(unprivilegedEnv) != "" {
			t.Fatal("still root after switching to an unprivileged user")
		}
		runAsNobody(t, "^TestReadUnreadable$")
		return
	}
	path := filepath.Join(t.TempDir(), "report.toml")
	assert.NilError(t, os.WriteFile(path, nil, 0o000))
	_, err := Read(path)
	assertInvalid(t, err, "report "+path+": open: permission denied")
	assert.Check(t, errors.Is(err, os.ErrPermission))
}

// runAsNobody runs the tests matching pattern in a copy of this test binary
// as user nobody, and fails if they do not pass.
func runAsNobody(t *testing.T, pattern string) {
	t.Helper()
	// A directory nobody can reach: the binary's copy and nobody's TMPDIR.
	shared := t.TempDir()
	for _, d := range []string{filepath.Dir(shared), shared} {
		assert.NilError(t, os.Chmod(d, 0o755))
	}
	for d := filepath.Dir(filepath.Dir(shared)); ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		assert.NilError(t, err)
		if info.Mode().Perm()&0o001 == 0 {
			t.Skipf("cannot run as nobody: %s (above the test's temp dir) is not searchable by others", d)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	tmp := filepath.Join(shared, "tmp")
	assert.NilError(t, os.Mkdir(tmp, 0o777))
	assert.NilError(t, os.Chmod(tmp, 0o777)) // beat the umask

	self, err := os.Executable()
	assert.NilError(t, err)
	bin := filepath.Join(shared, "report.test")
	copyFile(t, self, bin)

	cmd := exec.Command(bin, "-test.run="+pattern, "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), unprivilegedEnv+"=1", "TMPDIR="+tmp, "HOME="+tmp, "GOCOVERDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, os.ErrPermission) && len(out) == 0 {
		t.Skipf("cannot run as nobody (no CAP_SETUID?): %v", err)
	}
	assert.NilError(t, err, "as nobody:\n%s", out)
	assert.Check(t, strings.Contains(string(out), "--- PASS"), "as nobody:\n%s", out)
	assert.Check(t, !strings.Contains(string(out), "--- SKIP"), "as nobody:\n%s", out)
	t.Logf("as nobody:\n%s", out)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	assert.NilError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	assert.NilError(t, err)
	_, err = io.Copy(dst, src)
	assert.NilError(t, err)
	assert.NilError(t, dst.Close())
}
