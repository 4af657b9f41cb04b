package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"

	"github.com/exportreport/exportreport/test/distribution"
)

// Versions of the builders installed with go install (the others are
// Debian's: skopeo, buildah 1.28, podman 4.3).
const (
	craneVersion = "v0.22.1"
	koVersion    = "v0.19.1"
)

// TestReport2ResultsFromRealBuilders: each builder that runs here pushes an
// image to the real Distribution registry and writes what it pushed in its
// own format; report2results reads that file (its kind given, and auto),
// asks the registry once per image, and its results name exactly what the
// registry serves (skopeo inspect --raw, sha256 of the manifest).
func TestReport2ResultsFromRealBuilders(t *testing.T) {
	t.Parallel()
	skopeo := distribution.RequireTool(t, "skopeo")
	reg := distribution.Start(t)
	host := reg.Host()
	src := writeLayout(t, newImage(t, "builders", amd64))

	type produced struct {
		kind  string
		file  string
		args  []string
		url   string   // IMAGE_URL wanted
		refs  []string // every reference pushed, for IMAGES
		index bool     // an image index (several platforms)
		// served is a reference to ask the registry for what was pushed
		// (default url).
		served string
	}
	builders := []struct {
		name string
		make func(t *testing.T, dir string) produced
	}{
		// crane's --image-refs names the repository, not the tag pushed.
		{"crane push --image-refs", func(t *testing.T, dir string) produced {
			crane := goInstalled(t, "github.com/google/go-containerregistry/cmd/crane", craneVersion)
			repo := host + "/crane/app"
			file := filepath.Join(dir, "image-refs")
			runTool(t, crane, "push", "--insecure", "--image-refs", file, src, repo+":1.0")
			return produced{kind: "refs", file: file, url: repo, refs: []string{repo}, served: repo + ":1.0"}
		}},
		{"crane digest --full-ref", func(t *testing.T, dir string) produced {
			crane := goInstalled(t, "github.com/google/go-containerregistry/cmd/crane", craneVersion)
			ref := host + "/crane/digest:1.0"
			runTool(t, crane, "push", "--insecure", src, ref)
			file := filepath.Join(dir, "digest-full-ref")
			out := runTool(t, crane, "digest", "--insecure", "--full-ref", ref)
			assert.NilError(t, os.WriteFile(file, []byte(out+"\n"), 0o644))
			// --full-ref prints REPOSITORY@DIGEST.
			return produced{kind: "refs", file: file, url: host + "/crane/digest", refs: []string{host + "/crane/digest"}, served: ref}
		}},
		{"skopeo copy --digestfile", func(t *testing.T, dir string) produced {
			ref := host + "/skopeo/app:1.0"
			file := filepath.Join(dir, "digestfile")
			runTool(t, skopeo, "copy", "--dest-tls-verify=false", "--digestfile", file, "oci:"+src, "docker://"+ref)
			return produced{kind: "digest", file: file, args: []string{"-image", ref}, url: ref, refs: []string{ref}}
		}},
		{"skopeo copy to oci:", func(t *testing.T, dir string) produced {
			ref := host + "/skopeo/layout:2.0"
			runTool(t, skopeo, "copy", "--dest-tls-verify=false", "oci:"+src, "docker://"+ref)
			lay := filepath.Join(dir, "layout")
			runTool(t, skopeo, "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+lay+":2.0")
			return produced{kind: "oci-layout", file: lay, args: []string{"-image", host + "/skopeo/layout"}, url: ref, refs: []string{ref}}
		}},
		{"buildah push --digestfile", func(t *testing.T, dir string) produced {
			buildah := distribution.RequireTool(t, "buildah")
			storage := []string{"--storage-driver", "vfs", "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot")}
			t.Cleanup(func() { unmountAll(filepath.Join(dir, "root")) })
			ctr := runTool(t, buildah, append(storage, "from", "scratch")...)
			assert.NilError(t, os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from buildah\n"), 0o644))
			runTool(t, buildah, append(storage, "copy", ctr, filepath.Join(dir, "hello.txt"), "/hello.txt")...)
			runTool(t, buildah, append(storage, "commit", ctr, "localhost/built:1")...)
			ref := host + "/buildah/app:1.0"
			file := filepath.Join(dir, "digestfile")
			runTool(t, buildah, append(storage, "push", "--tls-verify=false", "--digestfile", file, "localhost/built:1", "docker://"+ref)...)
			return produced{kind: "digest", file: file, args: []string{"-image", ref}, url: ref, refs: []string{ref}}
		}},
		{"podman push --digestfile", func(t *testing.T, dir string) produced {
			podman := distribution.RequireTool(t, "podman")
			// podman refuses a runroot path longer than 50 characters.
			runroot, err := os.MkdirTemp("", "pdm")
			assert.NilError(t, err)
			t.Cleanup(func() { os.RemoveAll(runroot) })
			storage := []string{"--storage-driver", "vfs", "--root", filepath.Join(dir, "root"), "--runroot", runroot,
				"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", filepath.Join(dir, "tmp")}
			t.Cleanup(func() { unmountAll(filepath.Join(dir, "root")) })
			tar := filepath.Join(dir, "rootfs.tar")
			assert.NilError(t, os.WriteFile(tar, tarFile(t, "hello.txt", "hello from podman\n"), 0o644))
			runTool(t, podman, append(storage, "import", tar, "localhost/imported:1")...)
			ref := host + "/podman/app:1.0"
			file := filepath.Join(dir, "digestfile")
			runTool(t, podman, append(storage, "push", "--tls-verify=false", "--digestfile", file, "localhost/imported:1", "docker://"+ref)...)
			return produced{kind: "digest", file: file, args: []string{"-image", ref}, url: ref, refs: []string{ref}}
		}},
		{"ko build --image-refs (two platforms)", func(t *testing.T, dir string) produced {
			ko := goInstalled(t, "github.com/google/ko", koVersion)
			root := repoRoot(t)
			base := icmd.RunCmd(icmd.Command("go", "run", "./hack/ko-base", "-insecure", host+"/ko-base:1"), icmd.Dir(root))
			base.Assert(t, icmd.Success)
			file := filepath.Join(dir, "image-refs")
			res := icmd.RunCmd(icmd.Command(ko, "build", "--insecure-registry", "--bare", "--sbom=none", "--tags=1.0",
				"--platform=linux/amd64,linux/arm64", "--image-refs", file, "./cmd/report2results"),
				icmd.Dir(root), icmd.WithTimeout(5*time.Minute),
				icmd.WithEnv(append(os.Environ(), "KO_DOCKER_REPO="+host+"/ko/report2results",
					"KO_DEFAULTBASEIMAGE="+strings.TrimSpace(base.Stdout()), "KO_CONFIG_PATH="+filepath.Join(root, "ko.yaml"))...))
			res.Assert(t, icmd.Success)
			lines := strings.Split(strings.TrimSpace(readFile(t, file)), "\n")
			assert.Assert(t, len(lines) == 3, "ko --image-refs: an index and two platforms' manifests, got %q", lines)
			repo := host + "/ko/report2results"
			return produced{kind: "refs", file: file, url: repo, refs: []string{repo}, index: true}
		}},
	}
	for _, b := range builders {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			p := b.make(t, dir)
			// What the registry serves for the reference the builder
			// pushed (for ko: the index its file lists first).
			served := p.url
			if p.served != "" {
				served = p.served
			}
			if p.index {
				first, _, _ := strings.Cut(readFile(t, p.file), "\n")
				served = first
			}
			want := skopeoDigest(t, skopeo, served)

			for _, kind := range []string{p.kind, "auto"} {
				resultsDir := filepath.Join(t.TempDir(), "results")
				assert.NilError(t, os.Mkdir(resultsDir, 0o755))
				res := run(t, "report2results", dir, nil, append([]string{"-from", kind + ":" + p.file,
					"-results", "IMAGE_DIGEST,IMAGE_URL,IMAGES,ARTIFACT_OUTPUTS", "-results-dir", resultsDir,
					"-insecure-registry", host, "-write-report", filepath.Join(dir, "normalised-"+kind+".toml")}, p.args...)...)
				assertExit(t, res, 0)
				got := readResultFiles(t, resultsDir)
				assert.Check(t, is.Equal(got["IMAGE_DIGEST"], want), "-from %s", kind)
				assert.Check(t, is.Equal(got["IMAGE_URL"], p.url), "-from %s", kind)
				var lines []string
				for _, r := range p.refs {
					lines = append(lines, r+"@"+want)
				}
				assert.Check(t, is.Equal(got["IMAGES"], strings.Join(lines, "\n")), "-from %s", kind)
				var art map[string]string
				assert.NilError(t, json.Unmarshal([]byte(got["ARTIFACT_OUTPUTS"]), &art))
				assert.Check(t, is.Equal(art["digest"], want))
				assert.Check(t, is.Equal(art["isBuildArtifact"], "true"))
				r := readReport(t, filepath.Join(dir, "normalised-"+kind+".toml"))
				assert.Check(t, is.Equal(r.Image.Digest, want), "-write-report")
			}
		})
	}
}

// skopeoDigest is the sha256 of the raw manifest the registry serves.
func skopeoDigest(t *testing.T, skopeo, ref string) string {
	t.Helper()
	raw := icmd.RunCmd(icmd.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+ref), icmd.WithTimeout(time.Minute))
	raw.Assert(t, icmd.Success)
	return sha256Digest([]byte(raw.Stdout()))
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	return string(b)
}

func readResultFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	out := map[string]string{}
	for _, e := range entries {
		out[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
	}
	return out
}

// goInstalled is pkg@version installed with go install into the cache the
// scripts share (${XDG_CACHE_HOME:-~/.cache}/exportreport/NAME-VERSION).
func goInstalled(t *testing.T, pkg, version string) string {
	t.Helper()
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		assert.NilError(t, err)
		cache = filepath.Join(home, ".cache")
	}
	bin := filepath.Join(cache, "exportreport", filepath.Base(pkg)+"-"+version)
	exe := filepath.Join(bin, filepath.Base(pkg))
	if _, err := os.Stat(exe); err == nil {
		return exe
	}
	cmd := exec.Command("go", "install", pkg+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		distribution.Unavailable(t, "%s@%s cannot be installed with go install: %v: %s", pkg, version, err, out)
	}
	return exe
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	assert.NilError(t, err)
	return root
}

// unmountAll unmounts what buildah or podman left mounted under dir (their
// vfs storage mounts nothing, but a run may have), deepest first.
func unmountAll(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = exec.Command("umount", "-l", mounts[i]).Run()
	}
}
