package mvcc

import "testing"

func TestSpan(t *testing.T) {
	bounded := Span{Start: []byte("b"), End: []byte("d")}
	toEnd := Span{Start: []byte("b")}
	all := Span{}
	for _, c := range []struct {
		span       Span
		key, end   string
		contains   bool // Contains(key)
		containsRg bool // ContainsRange(key, end)
	}{
		{bounded, "b", "", true, true},
		{bounded, "a", "", false, false},
		{bounded, "c\xff", "", true, true},
		{bounded, "d", "", false, false},
		{bounded, "b", "d", true, true},
		{bounded, "b", "d\x00", true, false},
		{bounded, "a", "c", false, false},
		{bounded, "b", "\x00", true, false}, // from-key never fits a bounded span
		{toEnd, "b", "\x00", true, true},
		{toEnd, "a", "\x00", false, false},
		{toEnd, "zzz", "", true, true},
		{all, "", "\x00", true, true},
		{all, "\x00", "\x00", true, true},
		{bounded, "c", "a", true, true}, // empty interval: routed by its key
		{bounded, "e", "a", false, false},
		{bounded, "c", "c", true, true},
	} {
		if got := c.span.Contains([]byte(c.key)); got != c.contains {
			t.Errorf("%q..%q Contains(%q) = %v, want %v", c.span.Start, c.span.End, c.key, got, c.contains)
		}
		if got := c.span.ContainsRange([]byte(c.key), []byte(c.end)); got != c.containsRg {
			t.Errorf("%q..%q ContainsRange(%q, %q) = %v, want %v", c.span.Start, c.span.End, c.key, c.end, got, c.containsRg)
		}
	}
}
