package redistore

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
	"github.com/redisession/redistore/internal/envelope"
)

// Compressor compresses serialized sessions (Config.Compressor). The
// envelope records which compressor wrote a value, so that a store reads
// values of every compressor it knows whatever it writes: LZ4 and zstd
// always, an application's own when it is the configured one.
//
// A Compressor is used concurrently.
type Compressor interface {
	// ID names the compressor in stored values: CompressorLZ4 and
	// CompressorZstd are this package's; an application's uses 0x80 to
	// 0xff. It must never change for a compressor.
	ID() byte
	// Name names it for Stats and the redistore command ("lz4", "zstd").
	Name() string
	// Compress appends the compressed form of src to dst. A result no
	// shorter than src is not stored (the session is stored plain).
	Compress(dst, src []byte) ([]byte, error)
	// Decompress decompresses src into dst, whose length is exactly the
	// original size (at most Config.MaxLength): it must fail rather than
	// write or allocate beyond it when src holds more, or less.
	Decompress(dst, src []byte) error
}

// Compressor IDs of this package.
const (
	CompressorLZ4  byte = 0x01
	CompressorZstd byte = 0x02
)

// LZ4 returns the LZ4 block compressor, the default: fast, and a good
// ratio on the small sessions most sites have.
func LZ4() Compressor { return envelope.LZ4{} }

// ZstdLevel is a zstd compression level.
type ZstdLevel int

// zstd levels, from the fastest to the smallest output.
const (
	ZstdFastest ZstdLevel = ZstdLevel(zstd.SpeedFastest)
	ZstdDefault ZstdLevel = ZstdLevel(zstd.SpeedDefault)
	ZstdBetter  ZstdLevel = ZstdLevel(zstd.SpeedBetterCompression)
	ZstdBest    ZstdLevel = ZstdLevel(zstd.SpeedBestCompression)
)

// Zstd returns a zstd compressor (github.com/klauspost/compress/zstd) at
// the given level: on large sessions (carts, wizards, cached permissions:
// 8 KiB and more) it stores about half of what LZ4 does, for more CPU per
// write. Its encoder is shared and safe for concurrent use.
func Zstd(level ZstdLevel) (Compressor, error) {
	switch level {
	case ZstdFastest, ZstdDefault, ZstdBetter, ZstdBest:
	default:
		return nil, fmt.Errorf("redistore: zstd level %d is unknown: use ZstdFastest, ZstdDefault, ZstdBetter or ZstdBest", int(level))
	}
	z, err := envelope.NewZstd(zstd.EncoderLevel(level))
	if err != nil {
		return nil, fmt.Errorf("redistore: zstd: %w", err)
	}
	return z, nil
}
