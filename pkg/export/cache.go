package export

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/exportreport/exportreport/pkg/atomicfile"
)

// layerGzipLevel is the compression level of appended layers, cached or not
// (go-containerregistry's default, so both give the same bytes).
const layerGzipLevel = gzip.BestSpeed

// cacheKey hashes everything the layer's bytes depend on: the format
// version, the destination, the time, and for every entry its relative path,
// mode, size, symlink target and content.
func (dl *dirLayer) cacheKey(ctx context.Context) (string, error) {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(layerFormatVersion)
	field(dl.prefix)
	field(dl.created.UTC().Format("2006-01-02T15:04:05Z"))
	for _, e := range dl.entries {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		field(e.rel)
		field(fmt.Sprintf("%o %d", uint32(e.info.Mode()), e.info.Size()))
		field(e.link)
		sum := ""
		if e.info.Mode().IsRegular() {
			var err error
			if sum, err = fileSHA256(e); err != nil {
				return "", fmt.Errorf("-append %q: %w", appendValue(dl.spec), err)
			}
		}
		field(sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileSHA256(e layerEntry) (string, error) {
	h := sha256.New()
	if err := copyFile(h, e); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cachedLayer returns the layer from dir's cache, building and storing it
// first if it is not there. Any cache failure is logged and the layer built
// without the cache.
func (dl *dirLayer) cachedLayer(ctx context.Context, dir string) (v1.Layer, error) {
	flag := appendValue(dl.spec)
	key, err := dl.cacheKey(ctx)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, key+".tar.gz")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		l, err := tarball.LayerFromFile(p)
		if err == nil {
			slog.Info("layer cache hit: not compressing again", "append", flag, "file", p)
			return l, nil
		}
		slog.Warn("layer cache entry unusable; rebuilding it", "append", flag, "file", p, "err", err)
		_ = os.Remove(p)
	}
	if err := dl.writeCacheFile(ctx, p); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		slog.Warn("layer cache write failed; building the layer without the cache", "append", flag, "dir", dir, "err", err)
		return dl.layer(ctx)
	}
	l, err := tarball.LayerFromFile(p)
	if err != nil {
		slog.Warn("layer cache entry unreadable; building the layer without the cache", "append", flag, "file", p, "err", err)
		return dl.layer(ctx)
	}
	slog.Info("layer cached", "append", flag, "file", p)
	return l, nil
}

// writeCacheFile compresses the layer once into p, atomically: a failure
// leaves nothing at p.
func (dl *dirLayer) writeCacheFile(ctx context.Context, p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(p, 0o644, func(w io.Writer) error {
		gw, err := gzip.NewWriterLevel(w, layerGzipLevel)
		if err != nil {
			return err
		}
		rc, err := dl.opener(ctx)()
		if err != nil {
			return err
		}
		_, err = io.Copy(gw, rc)
		rc.Close()
		if err != nil {
			return err
		}
		return gw.Close()
	})
}
