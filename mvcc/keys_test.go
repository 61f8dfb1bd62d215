package mvcc

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// randomKey draws from an alphabet rich in the bytes the escape cares about,
// so prefixes, embedded zeros and 0xFF runs are common.
func randomKey(r *rand.Rand) []byte {
	alphabet := []byte{0x00, 0x01, 0x02, 0xFE, 0xFF, 'a', 'b'}
	k := make([]byte, r.IntN(6))
	for i := range k {
		k[i] = alphabet[r.IntN(len(alphabet))]
	}
	return k
}

// orderViolation returns a description of the first pair whose encodings do
// not order like (key, rev desc), or "" when encode preserves the order.
func orderViolation(encode func(key []byte, rev int64) []byte, keys [][]byte, revs []int64) string {
	for i := range keys {
		for j := range keys {
			for _, ri := range revs {
				for _, rj := range revs {
					want := bytes.Compare(keys[i], keys[j])
					if want == 0 {
						want = -compareInt64(ri, rj) // newest first
					}
					got := bytes.Compare(encode(keys[i], ri), encode(keys[j], rj))
					if got != want {
						return fmt.Sprintf("(%x@%d) vs (%x@%d): encoded order %d, want %d", keys[i], ri, keys[j], rj, got, want)
					}
				}
			}
		}
	}
	return ""
}

// TestVersionKeyOrder is the property the storage layout rests on: version
// keys sort by user key (bytes.Compare), then newest revision first.
func TestVersionKeyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	revs := []int64{1, 2, 255, 256, 1 << 40}
	for round := range 50 {
		keys := [][]byte{{}, {0}, {0, 0}, {0xFF}, {0, 0xFF}, {0xFF, 0}}
		for range 20 {
			keys = append(keys, randomKey(r))
		}
		if v := orderViolation(versionKey, keys, revs); v != "" {
			t.Fatalf("round %d: %s", round, v)
		}
	}
}

// TestOrderCheckerCatchesNaiveEncoding proves the order check can fail: raw
// key + revision (no escape, no terminator) mis-orders a key against its
// extensions.
func TestOrderCheckerCatchesNaiveEncoding(t *testing.T) {
	naive := func(key []byte, rev int64) []byte { return appendRev(append([]byte{'k'}, key...), rev) }
	keys := [][]byte{[]byte("a"), []byte("a\x00"), []byte("a\xff")}
	if orderViolation(naive, keys, []int64{1, 2}) == "" {
		t.Fatal("order check passed a naive encoding")
	}
	noEscape := func(key []byte, rev int64) []byte {
		return appendRev(append(append([]byte{'k'}, key...), 0, 1), rev)
	}
	if orderViolation(noEscape, [][]byte{{1}, {1, 0}, {1, 0, 0}}, []int64{1}) == "" {
		t.Fatal("order check passed an encoding without escaping")
	}
}

func TestKeyDecodeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		k := randomKey(r)
		enc := appendEncodedKey([]byte("x"), k)
		got, rest, err := decodeKey(append(enc[1:], 9, 9))
		if err != nil || !bytes.Equal(got, k) || !bytes.Equal(rest, []byte{9, 9}) {
			t.Fatalf("decode(enc(%x)) = %x, rest %x, %v", k, got, rest, err)
		}
		n, rev, err := splitVersionKey(versionKey(k, 77))
		if err != nil || rev != 77 || !bytes.Equal(versionKey(k, 77)[:n], versionPrefix(k)) {
			t.Fatalf("splitVersionKey(%x) = %d, %d, %v", k, n, rev, err)
		}
		erev, ekey, err := splitEventKey(eventKey(99, 3, k))
		if err != nil || erev != 99 || !bytes.Equal(ekey, k) {
			t.Fatalf("splitEventKey(%x) = %d, %x, %v", k, erev, ekey, err)
		}
	}
	for _, bad := range [][]byte{{}, {'a'}, {0}, {0, 2}, {'a', 0, 0x10}} {
		if _, _, err := decodeKey(bad); err == nil {
			t.Errorf("decodeKey(%x) accepted a malformed key", bad)
		}
	}
}

// TestVersionsAfter checks the bound scans use to skip a key's versions: it
// is above every version of the key and below every version of later keys.
func TestVersionsAfter(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		a, b := randomKey(r), randomKey(r)
		if bytes.Compare(a, b) >= 0 {
			continue
		}
		after := versionsAfter(versionPrefix(a))
		if bytes.Compare(versionKey(a, 0), after) >= 0 || bytes.Compare(versionKey(a, 1), after) >= 0 {
			t.Fatalf("versionsAfter(%x) is not above the key's versions", a)
		}
		if bytes.Compare(after, versionKey(b, 1<<62)) > 0 {
			t.Fatalf("versionsAfter(%x) is above a version of later key %x", a, b)
		}
	}
}

// FuzzKeyEncoding checks order preservation and round trips on any pair of
// keys; `go test` runs the seeds, `go test -fuzz FuzzKeyEncoding` explores.
func FuzzKeyEncoding(f *testing.F) {
	f.Add([]byte("a"), []byte("a\x00"))
	f.Add([]byte("\x00\xff"), []byte("\x00"))
	f.Add([]byte{}, []byte{0})
	f.Add([]byte("ab"), []byte("a\xff\x00"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ea, eb := appendEncodedKey(nil, a), appendEncodedKey(nil, b)
		if got, want := bytes.Compare(ea, eb), bytes.Compare(a, b); got != want {
			t.Fatalf("compare(enc(%x), enc(%x)) = %d, want %d", a, b, got, want)
		}
		if !bytes.Equal(a, b) && (bytes.HasPrefix(ea, eb) || bytes.HasPrefix(eb, ea)) {
			t.Fatalf("enc(%x) and enc(%x): one is a prefix of the other", a, b)
		}
		got, rest, err := decodeKey(ea)
		if err != nil || !bytes.Equal(got, a) || len(rest) != 0 {
			t.Fatalf("decode(enc(%x)) = %x, %x, %v", a, got, rest, err)
		}
	})
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte("a"), []byte("b")},
		{[]byte("a\xff"), []byte("b")},
		{[]byte{0xff, 0xff}, nil},
		{[]byte{'l', 0, 0, 0, 0, 0, 0, 0, 5}, []byte{'l', 0, 0, 0, 0, 0, 0, 0, 6}},
	} {
		if got := prefixEnd(c.in); !bytes.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("prefixEnd(%x) = %x, want %x", c.in, got, c.want)
		}
	}
}
