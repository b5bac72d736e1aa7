package sqlstore

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Compact is v as stored: packed against the preset dictionary jsonDict
// behind dictMark when that is smaller or v begins with deflatedMark, else
// v itself. Inflate reverses it. It is for small JSON values (idempotency
// responses, a payment's risk assessment), which deflate shrinks little
// and slowly: a payment's response of 577 bytes deflates to 362 bytes in
// 11 µs at BestSpeed, whose Reset clears about half a megabyte of tables
// per value. (flate ignores a preset dictionary at BestSpeed; at level 2
// with one it was 160 bytes, but 18 µs, 15% of bench payments' CPU with
// four values a payment.) Packed, it is 200 bytes in about 1 µs
// (BenchmarkCompact).
//
// The format is LZ77 without entropy coding, over a window of jsonDict
// followed by the value: the value's length as a uvarint (so that a
// truncated value is refused, not read short), then tokens, each a
// uvarint x, then
//   - x even: a literal run of x/2 bytes, which follow;
//   - x odd: a copy of x/2 + packMin bytes from a uvarint distance back in
//     the window (at most the window so far; a copy may overlap itself).
func Compact(v []byte) []byte {
	marked := bytes.HasPrefix(v, deflatedMark)
	if len(v) < compactMin && !marked {
		return v
	}
	out := append(make([]byte, 0, len(dictMark)+len(v)/2+16), dictMark...)
	out = pack(binary.AppendUvarint(out, uint64(len(v))), v)
	if len(out) >= len(v) && !marked {
		return v
	}
	return out
}

// compactMin is the size under which Compact keeps a value as it is. Far
// below deflateMin: a packed value's header is 4 bytes or so, and the
// dictionary makes short values shorter still (a payment's usual risk
// assessment, 121 bytes of JSON, packs into 14), where deflate only adds
// its own.
const compactMin = 16

// packMin is the shortest copy: a token and its distance take 2–4 bytes.
const packMin = 4

// Hash table sizes, in bits: jsonDict's is built once; a value's, on the
// stack for each call, covers the few hundred bytes of a value.
const (
	dictHashBits  = 12
	valueHashBits = 10
)

var dictBytes = []byte(jsonDict)

// dictTable maps a hash of 4 bytes to the last place in jsonDict where
// bytes of that hash begin, or -1. The last place, as the dictionary puts
// what is most frequent at its end and a nearer copy codes no longer.
var dictTable = func() *[1 << dictHashBits]int32 {
	var t [1 << dictHashBits]int32
	for i := range t {
		t[i] = -1
	}
	for i := 0; i+packMin <= len(dictBytes); i++ {
		t[hash4(dictBytes[i:], dictHashBits)] = int32(i)
	}
	return &t
}()

// hash4 hashes b's first 4 bytes into bits bits.
func hash4(b []byte, bits uint) uint32 {
	return binary.LittleEndian.Uint32(b) * 2654435761 >> (32 - bits)
}

// matchLen is how many bytes a and b share from their starts.
func matchLen(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// pack appends v's tokens to dst. At each place it tries the last earlier
// place in v and the place in jsonDict that begin with the same 4 bytes'
// hash, and takes the longer match of at least packMin bytes.
func pack(dst, v []byte) []byte {
	var seen [1 << valueHashBits]int32 // places in v, plus one; 0: none
	lit := 0
	for i := 0; i+packMin <= len(v); {
		rest := v[i:]
		h := hash4(rest, valueHashBits)
		n, dist := 0, 0
		if p := int(seen[h]) - 1; p >= 0 {
			if m := matchLen(v[p:], rest); m >= packMin {
				n, dist = m, i-p
			}
		}
		seen[h] = int32(i + 1)
		if p := dictTable[hash4(rest, dictHashBits)]; p >= 0 {
			if m := matchLen(dictBytes[p:], rest); m >= packMin && m > n {
				n, dist = m, len(dictBytes)-int(p)+i
			}
		}
		if n == 0 {
			i++
			continue
		}
		dst = appendLiterals(dst, v[lit:i])
		dst = binary.AppendUvarint(dst, uint64(n-packMin)<<1|1)
		dst = binary.AppendUvarint(dst, uint64(dist))
		i += n
		lit = i
	}
	return appendLiterals(dst, v[lit:])
}

func appendLiterals(dst, lit []byte) []byte {
	if len(lit) == 0 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(len(lit))<<1)
	return append(dst, lit...)
}

var errPacked = errors.New("a stored value is damaged: its packed tokens do not decode")

// unpack decodes a length and the tokens that pack wrote, refusing a
// damaged value (a truncated token, a copy from before the window, a
// length that differs) and one that would unpack past maxInflated.
func unpack(b []byte) ([]byte, error) {
	size, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errPacked
	}
	if size > maxInflated {
		return nil, errors.New("a stored value inflates past its limit")
	}
	b = b[k:]
	w := make([]byte, len(dictBytes), len(dictBytes)+int(size))
	copy(w, dictBytes)
	for len(b) > 0 {
		x, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errPacked
		}
		b = b[k:]
		n := x >> 1
		if x&1 == 0 {
			if n > uint64(len(b)) {
				return nil, errPacked
			}
			w, b = append(w, b[:n]...), b[n:]
		} else {
			n += packMin
			d, k := binary.Uvarint(b)
			if k <= 0 || d == 0 || d > uint64(len(w)) {
				return nil, errPacked
			}
			b = b[k:]
			if n > size {
				return nil, errPacked
			}
			from := len(w) - int(d)
			for j := range int(n) {
				w = append(w, w[from+j])
			}
		}
		if uint64(len(w)-len(dictBytes)) > size {
			return nil, errPacked
		}
	}
	if uint64(len(w)-len(dictBytes)) != size {
		return nil, errPacked
	}
	return w[len(dictBytes):], nil
}
