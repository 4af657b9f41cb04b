package integration

import (
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// nonRoot is the user and group the step images run as (ko.yaml's base,
// hack/release --image-user).
const nonRoot = 65532

// TestBinariesRunAsNonRoot runs export-step (OCI layout source, -append,
// -oci-layout, report) and report2results (results, -oci-layout,
// termination message) as uid/gid 65532 with no supplementary groups, on a
// work directory owned by 65532, as a Tekton step with
// podTemplate.securityContext.fsGroup gets it: both succeed, and every file
// they write is owned by 65532. Nothing needs root.
func TestBinariesRunAsNonRoot(t *testing.T) {
	t.Parallel()
	var cred *syscall.Credential
	switch os.Geteuid() {
	case 0:
		cred = &syscall.Credential{Uid: nonRoot, Gid: nonRoot, Groups: []uint32{}}
	case nonRoot:
	default:
		t.Logf("running as uid %d, not root: the commands run as this uid", os.Geteuid())
	}
	uid := os.Geteuid()
	if cred != nil {
		uid = nonRoot
	}

	// One directory everyone may enter: the binaries and the source (owned
	// by root, read-only to others), and the work directory owned by 65532.
	top, err := os.MkdirTemp("", "exportreport-nonroot-")
	assert.NilError(t, err)
	t.Cleanup(func() { os.RemoveAll(top) })
	assert.NilError(t, os.Chmod(top, 0o755))
	bin := filepath.Join(top, "bin")
	assert.NilError(t, os.Mkdir(bin, 0o755))
	for _, c := range commands {
		copyExecutable(t, binary(t, c), filepath.Join(bin, c))
	}
	src := filepath.Join(top, "source")
	assert.NilError(t, os.Rename(writeLayout(t, newImage(t, "nonroot", amd64)), src))
	assert.NilError(t, filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	}))
	appendDir := filepath.Join(top, "append")
	assert.NilError(t, os.MkdirAll(filepath.Join(appendDir, "etc"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(appendDir, "etc", "app.conf"), []byte("k=v\n"), 0o644))
	work := filepath.Join(top, "work")
	assert.NilError(t, os.Mkdir(work, 0o700))
	if cred != nil {
		assert.NilError(t, os.Chown(work, nonRoot, nonRoot))
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	runAs := func(command string, args ...string) (stdout string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, command), args...)
		cmd.Dir = work
		cmd.Env = []string{"HOME=" + work, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		t.Logf("%s %s\n  stdout: %q\n  stderr: %s", command, strings.Join(args, " "), out.String(), indent(errb.String()))
		assert.NilError(t, err, "%s as uid %d", command, uid)
		return out.String()
	}

	digest := strings.TrimSpace(runAs("export-step", "-quiet", "-source", "oci:"+src,
		"-append", appendDir+":/opt/app", "-oci-layout", filepath.Join(work, "exported"),
		"-report", filepath.Join(work, "report.toml"), "-insecure-registry", host, host+"/nonroot/app:1"))
	assert.Check(t, strings.HasPrefix(digest, "sha256:"), "stdout %q", digest)
	assert.NilError(t, os.Mkdir(filepath.Join(work, "results"), 0o755))
	if cred != nil {
		assert.NilError(t, os.Chown(filepath.Join(work, "results"), nonRoot, nonRoot))
	}
	runAs("report2results", "-report", filepath.Join(work, "report.toml"), "-results-dir", filepath.Join(work, "results"),
		"-results", "IMAGE_DIGEST,IMAGE_URL,IMAGES", "-oci-layout", filepath.Join(work, "layout"),
		"-termination-message", filepath.Join(work, "termination-log"), "-offline")

	b, err := os.ReadFile(filepath.Join(work, "results", "IMAGE_DIGEST"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), digest))
	// Every file written belongs to the user the commands ran as.
	var files int
	assert.NilError(t, filepath.Walk(work, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		files++
		st := fi.Sys().(*syscall.Stat_t)
		assert.Check(t, int(st.Uid) == uid && (cred == nil || st.Gid == nonRoot), "%s is owned by %d:%d", p, st.Uid, st.Gid)
		return nil
	}))
	t.Logf("%d files and directories written as uid %d", files, uid)
	assert.Check(t, files > 10)
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(to, b, 0o755))
}
