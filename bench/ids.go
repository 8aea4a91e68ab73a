//go:build linux

package bench

import (
	"encoding/hex"
	"fmt"
)

// idCodec puts a run tag and a sequence number into a reading id. Vigil
// requires reading ids to be UUIDs (8-4-4-4-12 hexadecimal digits), so the id
// is tttttttt-0000-4000-8000-ssssssssssss: the run's tag, fixed middle groups
// (version 4, RFC 4122 variant, so it is a well-formed UUID), and the sequence
// number in the last 48 bits. A receiver turns an id back into its sequence
// number with a few byte comparisons and no map, and ids of another run (a
// server reused with --url) are recognised as foreign by their tag.
type idCodec struct {
	prefix [24]byte // "tttttttt-0000-4000-8000-"
}

// maxSeq is the largest sequence number an id can carry (48 bits).
const maxSeq = 1<<48 - 1

func newIDCodec(tag uint32) idCodec {
	var c idCodec
	copy(c.prefix[:], fmt.Sprintf("%08x-0000-4000-8000-", tag))
	return c
}

const hexDigits = "0123456789abcdef"

// appendID appends the id of seq to dst.
func (c *idCodec) appendID(dst []byte, seq uint64) []byte {
	dst = append(dst, c.prefix[:]...)
	for shift := 44; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(seq>>uint(shift))&0xf])
	}
	return dst
}

// id returns the id of seq as a string (tests and cold paths).
func (c *idCodec) id(seq uint64) string { return string(c.appendID(nil, seq)) }

// parse returns the sequence number of an id of this run. Vigil lower-cases
// reading ids, and this run only ever sends lower case, so upper case is
// foreign.
func (c *idCodec) parse(id []byte) (uint64, bool) {
	if len(id) != 36 || string(id[:24]) != string(c.prefix[:]) {
		return 0, false
	}
	var seq uint64
	for _, b := range id[24:] {
		var v byte
		switch {
		case '0' <= b && b <= '9':
			v = b - '0'
		case 'a' <= b && b <= 'f':
			v = b - 'a' + 10
		default:
			return 0, false
		}
		seq = seq<<4 | uint64(v)
	}
	return seq, true
}

// tagString renders a run tag for patient and trial ids.
func tagString(tag uint32) string {
	var b [4]byte
	b[0], b[1], b[2], b[3] = byte(tag>>24), byte(tag>>16), byte(tag>>8), byte(tag)
	return hex.EncodeToString(b[:])
}
