package envelope

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compressor IDs the format names (the store exports them as
// redistore.CompressorLZ4 and redistore.CompressorZstd).
const (
	CompressorLZ4  byte = 0x01
	CompressorZstd byte = 0x02
)

// LZ4 is the LZ4 block compressor, the store's default.
type LZ4 struct{}

// compressorPool holds lz4.Compressors: each carries a 64 KiB hash table that
// is far too costly to allocate per call.
var compressorPool = sync.Pool{New: func() any { return new(lz4.Compressor) }}

// ID is CompressorLZ4; Name is "lz4".
func (LZ4) ID() byte     { return CompressorLZ4 }
func (LZ4) Name() string { return "lz4" }

// Compress appends one LZ4 block of src to dst, or nothing when the block
// would not be shorter than src.
func (LZ4) Compress(dst, src []byte) ([]byte, error) {
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

// Decompress decompresses one LZ4 block into dst, which it must fill
// exactly.
func (LZ4) Decompress(dst, src []byte) error {
	m, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return fmt.Errorf("lz4: %w", err)
	}
	if m != len(dst) {
		return fmt.Errorf("lz4 block holds %d bytes, header says %d", m, len(dst))
	}
	return nil
}

// grow makes room for n more bytes after len(b).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// zstdWindow is the window of the frames Zstd writes (and the largest a
// store reads): sessions are at most a few hundred KiB.
const zstdWindow = 1 << 20

// Zstd is a zstd compressor (github.com/klauspost/compress/zstd). Its
// encoder is shared and safe for concurrent use.
type Zstd struct {
	enc *zstd.Encoder
}

// NewZstd returns a zstd compressor at the given level; its error is the
// zstd package's.
func NewZstd(level zstd.EncoderLevel) (*Zstd, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(zstdWindow), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	return &Zstd{enc: enc}, nil
}

// ID is CompressorZstd; Name is "zstd".
func (*Zstd) ID() byte     { return CompressorZstd }
func (*Zstd) Name() string { return "zstd" }

// Compress appends one zstd frame of src to dst.
func (z *Zstd) Compress(dst, src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, dst), nil
}

// Decompress is never called: stores decode zstd with a decoder bounded by
// their MaxLength (ZstdDecoder).
func (z *Zstd) Decompress(dst, src []byte) error {
	return errors.New("redistore: zstd values are decoded by the store's own decoder")
}

// ZstdDecoder decodes zstd values for one store, never allocating past its
// MaxLength for the output, nor past zstdWindow for the history, whatever a
// frame declares. It is safe for concurrent use.
type ZstdDecoder struct {
	once sync.Once
	dec  *zstd.Decoder
	err  error
	max  int
}

// NewZstdDecoder returns the decoder of a store whose MaxLength is
// maxLength. It builds the zstd decoder when first used.
func NewZstdDecoder(maxLength int) *ZstdDecoder {
	return &ZstdDecoder{max: maxLength}
}

// Decompress decodes one zstd frame into dst, which it must fill exactly.
func (d *ZstdDecoder) Decompress(dst, src []byte) error {
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
