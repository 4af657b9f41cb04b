package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// The compression shapes (issue 14): an image whose source holds its layers
// uncompressed, as `docker save` writes them, of three layers of Go toolchain
// files (FROM scratch + COPY): what must be compressed is real code and
// binaries, not random bytes.

// toolchainImage is the docker-archive the harness writes, and what it
// holds.
type toolchainImage struct {
	archive  string   // docker-archive file
	ref      string   // its RepoTags entry (and the daemon's name once loaded)
	layers   []string // uncompressed layer tars, next to the archive
	diffIDs  []string
	config   []byte
	rawBytes int64 // uncompressed layers, total
}

// toolchainLayers are the layers, each a list of GOROOT directories; a
// directory prefixed with "-" is left out of the one before it.
func toolchainLayers(quick bool) [][]string {
	if quick {
		return [][]string{{"src/cmd/go"}, {"src/runtime"}, {"src/net"}}
	}
	return [][]string{{"bin", "pkg"}, {"src/cmd"}, {"src", "-src/cmd"}}
}

// writeToolchainArchive writes, under dir, the layers from goroot and a
// docker-archive of them in the form Docker 20.10's `docker save` writes
// (<id>/layer.tar, <id>/json, <id>/VERSION, <config>.json, manifest.json,
// repositories). Files get mtime 0 and owner 0:0, so the bytes depend only
// on the toolchain's files.
func writeToolchainArchive(dir, goroot string, layers [][]string) (*toolchainImage, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	img := &toolchainImage{archive: filepath.Join(dir, "toolchain.tar"), ref: "exportreport-bench/toolchain:latest"}
	for i, dirs := range layers {
		p := filepath.Join(dir, fmt.Sprintf("layer%d.tar", i+1))
		d, n, err := writeDirLayer(p, goroot, dirs)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i+1, strings.Join(dirs, " "), err)
		}
		img.layers = append(img.layers, p)
		img.diffIDs = append(img.diffIDs, d)
		img.rawBytes += n
	}
	var err error
	img.config, err = json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      time.Unix(0, 0).UTC(),
		"config":       map[string]any{"Env": []string{"PATH=/usr/local/go/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": img.diffIDs},
	})
	if err != nil {
		return nil, err
	}
	cfgSum := sha256.Sum256(img.config)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"

	f, err := os.Create(img.archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	addBytes := func(name string, b []byte) error { return add(name, int64(len(b)), strings.NewReader(string(b))) }
	var layerPaths []string
	parent := ""
	for i, p := range img.layers {
		id := strings.TrimPrefix(img.diffIDs[i], "sha256:")
		if err := tw.WriteHeader(&tar.Header{Name: id + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		v1json, _ := json.Marshal(map[string]any{"id": id, "parent": parent, "created": time.Unix(0, 0).UTC()})
		if err := addBytes(id+"/VERSION", []byte("1.0")); err != nil {
			return nil, err
		}
		if err := addBytes(id+"/json", v1json); err != nil {
			return nil, err
		}
		lf, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		fi, err := lf.Stat()
		if err == nil {
			err = add(id+"/layer.tar", fi.Size(), lf)
		}
		lf.Close()
		if err != nil {
			return nil, err
		}
		layerPaths = append(layerPaths, id+"/layer.tar")
		parent = id
	}
	if err := addBytes(cfgName, img.config); err != nil {
		return nil, err
	}
	manifest, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{img.ref}, "Layers": layerPaths}})
	if err := addBytes("manifest.json", manifest); err != nil {
		return nil, err
	}
	repo, tag, _ := strings.Cut(img.ref, ":")
	repositories, _ := json.Marshal(map[string]any{repo: map[string]string{tag: parent}})
	if err := addBytes("repositories", repositories); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return img, f.Close()
}

// writeDirLayer writes to p an uncompressed layer of the GOROOT directories
// dirs (under usr/local/go/), returning its diff ID and size.
func writeDirLayer(p, goroot string, dirs []string) (string, int64, error) {
	f, err := os.Create(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	tw := tar.NewWriter(cw)
	var skip []string
	for _, d := range dirs {
		if s, ok := strings.CutPrefix(d, "-"); ok {
			skip = append(skip, filepath.Join(goroot, s))
		}
	}
	for _, d := range dirs {
		if strings.HasPrefix(d, "-") {
			continue
		}
		root := filepath.Join(goroot, d)
		err := filepath.WalkDir(root, func(abs string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			for _, s := range skip {
				if abs == s {
					return filepath.SkipDir
				}
			}
			fi, err := os.Lstat(abs)
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(abs); err != nil {
					return err
				}
			}
			hdr, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(goroot, abs)
			hdr.Name = path.Join("usr/local/go", filepath.ToSlash(rel))
			if fi.IsDir() {
				hdr.Name += "/"
			}
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
			hdr.Format = tar.FormatPAX
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				src, err := os.Open(abs)
				if err != nil {
					return err
				}
				_, err = io.Copy(tw, src)
				src.Close()
				return err
			}
			return nil
		})
		if err != nil {
			return "", 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), cw.n, f.Close()
}
