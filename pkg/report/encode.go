package report

import (
	"bytes"
	"io"

	"github.com/BurntSushi/toml"
)

// rfcDocument is report.toml as the RFC spells it, plus our extensions, in
// the documented key order.
type rfcDocument struct {
	Image rfcImage `toml:"image"`
}

type rfcImage struct {
	Tags         []string `toml:"tags"`
	Digest       string   `toml:"digest,omitempty"`
	ImageID      string   `toml:"image_id,omitempty"`
	ManifestSize int64    `toml:"manifest_size,omitzero"`
	MediaType    string   `toml:"media_type,omitempty"`
}

// platformDocument is report.toml as the Buildpacks lifecycle writes it
// (platform/files.Report, v0.21): same keys, same order, same encoder. The
// lifecycle's [build] table only carries a BOM for platform API < 0.9 and is
// omitted when empty, as it always is here.
type platformDocument struct {
	Image platformImage `toml:"image"`
}

type platformImage struct {
	Tags         []string `toml:"tags"`
	ImageID      string   `toml:"image-id,omitempty"`
	Digest       string   `toml:"digest,omitempty"`
	ManifestSize int64    `toml:"manifest-size,omitzero"`
}

func encode(w io.Writer, r *Report, schema Schema) error {
	data, err := marshal(r, schema)
	if err != nil {
		return newError("report: ", err, nil)
	}
	_, err = w.Write(data)
	return err
}

// marshal validates r and returns its encoding; errors are unprefixed
// problems.
func marshal(r *Report, schema Schema) ([]byte, error) {
	if schema == "" {
		schema = SchemaRFC
	}
	if schema != SchemaRFC && schema != SchemaPlatform {
		return nil, schemaProblem(schema)
	}
	if err := validate(r, rfcKeys); err != nil {
		return nil, err
	}
	img := r.Image
	var doc any
	switch schema {
	case SchemaRFC:
		id := img.ImageID
		if id != "" {
			id, _ = normaliseImageID(id) // validated above
		}
		doc = rfcDocument{Image: rfcImage{
			Tags:         img.Tags,
			Digest:       img.Digest,
			ImageID:      id,
			ManifestSize: img.ManifestSize,
			MediaType:    img.MediaType,
		}}
	case SchemaPlatform:
		doc = platformDocument{Image: platformImage{
			Tags:         img.Tags,
			ImageID:      img.ImageIDHex(),
			Digest:       img.Digest,
			ManifestSize: img.ManifestSize,
		}}
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
