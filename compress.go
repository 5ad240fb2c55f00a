package redistore

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
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
func LZ4() Compressor { return lz4Compressor{} }

type lz4Compressor struct{}

// compressorPool holds lz4.Compressors: each carries a 64 KiB hash table that
// is far too costly to allocate per call.
var compressorPool = sync.Pool{New: func() any { return new(lz4.Compressor) }}

func (lz4Compressor) ID() byte     { return CompressorLZ4 }
func (lz4Compressor) Name() string { return "lz4" }

func (lz4Compressor) Compress(dst, src []byte) ([]byte, error) {
	// Room for anything strictly shorter than src; LZ4 returns 0 when the
	// block does not fit, i.e. is not worth it.
	room := len(src) - 1
	if room <= 0 {
		return dst, nil
	}
	dst = grow(dst, room)
	c := compressorPool.Get().(*lz4.Compressor)
	n, err := c.CompressBlock(src, dst[len(dst):len(dst)+room])
	compressorPool.Put(c)
	if err != nil || n == 0 {
		return dst, err
	}
	return dst[:len(dst)+n], nil
}

func (lz4Compressor) Decompress(dst, src []byte) error {
	m, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return fmt.Errorf("lz4: %w", err)
	}
	if m != len(dst) {
		return fmt.Errorf("lz4 block holds %d bytes, header says %d", m, len(dst))
	}
	return nil
}

// ZstdLevel is a zstd compression level.
type ZstdLevel int

// zstd levels, from the fastest to the smallest output.
const (
	ZstdFastest ZstdLevel = ZstdLevel(zstd.SpeedFastest)
	ZstdDefault ZstdLevel = ZstdLevel(zstd.SpeedDefault)
	ZstdBetter  ZstdLevel = ZstdLevel(zstd.SpeedBetterCompression)
	ZstdBest    ZstdLevel = ZstdLevel(zstd.SpeedBestCompression)
)

// zstdWindow is the window of the frames Zstd writes (and the largest a
// store reads): sessions are at most a few hundred KiB.
const zstdWindow = 1 << 20

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
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevel(level)), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(zstdWindow), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("redistore: zstd: %w", err)
	}
	return &zstdCompressor{enc: enc}, nil
}

type zstdCompressor struct {
	enc *zstd.Encoder
}

func (*zstdCompressor) ID() byte     { return CompressorZstd }
func (*zstdCompressor) Name() string { return "zstd" }

func (z *zstdCompressor) Compress(dst, src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, dst), nil
}

// Decompress is never called: stores decode zstd with a decoder bounded by
// their MaxLength (zstdDecoder).
func (z *zstdCompressor) Decompress(dst, src []byte) error {
	return errors.New("redistore: zstd values are decoded by the store's own decoder")
}

// zstdDecoder decodes zstd values for one store, never allocating past its
// MaxLength for the output, nor past zstdWindow for the history, whatever a
// frame declares.
type zstdDecoder struct {
	once sync.Once
	dec  *zstd.Decoder
	err  error
	max  int
}

func (d *zstdDecoder) decompress(dst, src []byte) error {
	d.once.Do(func() {
		// The window of a small frame is zstd's minimum, which must fit in
		// the memory bound; DecodeAll never grows dst past its capacity.
		d.dec, d.err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(max(d.max, zstd.MinWindowSize))), zstd.WithDecoderMaxWindow(zstdWindow),
			zstd.WithDecodeAllCapLimit(true))
	})
	if d.err != nil {
		return fmt.Errorf("zstd: %w", d.err)
	}
	out, err := d.dec.DecodeAll(src, dst[:0])
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	if len(out) != len(dst) || len(out) > 0 && &out[0] != &dst[0] {
		return fmt.Errorf("zstd frame holds %d bytes, header says %d", len(out), len(dst))
	}
	return nil
}
