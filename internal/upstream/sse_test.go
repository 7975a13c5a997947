package upstream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func collectSSE(t *testing.T, stream string) ([]sseEvent, error) {
	t.Helper()
	var evs []sseEvent
	err := readSSE(strings.NewReader(stream), func(ev sseEvent) bool {
		evs = append(evs, ev)
		return true
	})
	return evs, err
}

func TestReadSSE(t *testing.T) {
	type ev struct {
		id, event, data string
		retry           time.Duration
	}
	tests := []struct {
		name   string
		stream string
		want   []ev
	}{
		{"one event", "data: hello\n\n", []ev{{data: "hello"}}},
		{"two events", "data: 1\n\ndata: 2\n\n", []ev{{data: "1"}, {data: "2"}}},
		{"multi-line data", "data: a\ndata: b\ndata: c\n\n", []ev{{data: "a\nb\nc"}}},
		{"empty data line", "data: a\ndata\ndata: b\n\n", []ev{{data: "a\n\nb"}}},
		{"CRLF", "id: 3\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n", []ev{{id: "3", data: "a\nb"}, {data: "c"}}},
		{"comments skipped", ": keep-alive\n\n:\ndata: x\n: between\n\n", []ev{{data: "x"}}},
		{"id and retry", "id: 7\nretry: 1500\ndata: x\n\n", []ev{{id: "7", retry: 1500 * time.Millisecond, data: "x"}}},
		{"id alone is dispatched", "id: 9\n\n", []ev{{id: "9"}}},
		{"retry alone is dispatched", "retry: 100\n\n", []ev{{retry: 100 * time.Millisecond}}},
		{"event alone is not", "event: ping\n\n", nil},
		{"event type", "event: message\ndata: {}\n\n", []ev{{event: "message", data: "{}"}}},
		{"no space after colon", "data:x\n\n", []ev{{data: "x"}}},
		{"only one space stripped", "data:  x\n\n", []ev{{data: " x"}}},
		{"colons in the value", `data: {"a":"b:c"}` + "\n\n", []ev{{data: `{"a":"b:c"}`}}},
		{"unknown field ignored", "foo: bar\ndata: x\n\n", []ev{{data: "x"}}},
		{"bad retry ignored", "retry: soon\ndata: x\n\n", []ev{{data: "x"}}},
		{"id does not carry over", "id: 1\ndata: a\n\ndata: b\n\n", []ev{{id: "1", data: "a"}, {data: "b"}}},
		{"unterminated event dropped", "data: a\n\ndata: partial", []ev{{data: "a"}}},
		{"blank lines only", "\n\n\n", nil},
		{"empty stream", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := collectSSE(t, tt.stream)
			if !errors.Is(err, io.EOF) {
				t.Errorf("err = %v, want io.EOF at the end of the stream", err)
			}
			if len(evs) != len(tt.want) {
				t.Fatalf("got %d events %+v, want %d", len(evs), evs, len(tt.want))
			}
			for i, w := range tt.want {
				g := evs[i]
				if g.id != w.id || g.event != w.event || string(g.data) != w.data || g.retry != w.retry {
					t.Errorf("event %d = {id %q event %q data %q retry %v}, want %+v", i, g.id, g.event, g.data, g.retry, w)
				}
			}
		})
	}
}

func TestReadSSEStops(t *testing.T) {
	calls := 0
	err := readSSE(strings.NewReader("data: 1\n\ndata: 2\n\n"), func(sseEvent) bool {
		calls++
		return false
	})
	if err != nil || calls != 1 {
		t.Errorf("readSSE = %v after %d calls, want nil after 1", err, calls)
	}
}

// TestReadSSEEventDataIsOwned guards against handing the callback a slice
// of a buffer that the next event overwrites.
func TestReadSSEEventDataIsOwned(t *testing.T) {
	var kept [][]byte
	_ = readSSE(strings.NewReader("data: first\n\ndata: second\n\n"), func(ev sseEvent) bool {
		kept = append(kept, ev.data)
		return true
	})
	if len(kept) != 2 || string(kept[0]) != "first" || string(kept[1]) != "second" {
		t.Errorf("kept %q", kept)
	}
}

// TestReadSSELimit guards memory: an upstream cannot make Mandate buffer an
// event larger than maxLine, whether in one line or in many.
func TestReadSSELimit(t *testing.T) {
	line := "data: " + strings.Repeat("x", 1<<20) + "\n"
	tests := []struct {
		name   string
		stream func() io.Reader
	}{
		{"one long line", func() io.Reader {
			return io.MultiReader(strings.NewReader("data: "), io.LimitReader(repeatReader('x'), maxLine+1), strings.NewReader("\n\n"))
		}},
		{"many lines", func() io.Reader {
			return io.MultiReader(strings.NewReader(strings.Repeat(line, maxLine>>20+1)), strings.NewReader("\n"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			err := readSSE(tt.stream(), func(sseEvent) bool { called = true; return true })
			if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "16 MiB") {
				t.Errorf("err = %v, want the size limit", err)
			}
			if called {
				t.Error("an oversized event was delivered")
			}
		})
	}
	// A line of exactly maxLine bytes is still accepted.
	n := maxLine - len("data: ")
	evs, err := collectSSE(t, "data: "+strings.Repeat("y", n)+"\n\n")
	if !errors.Is(err, io.EOF) || len(evs) != 1 || len(evs[0].data) != n {
		t.Errorf("line of maxLine bytes: %d events, err %v", len(evs), err)
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func FuzzReadSSE(f *testing.F) {
	for _, s := range []string{
		"data: hello\n\n",
		"id: 1\nretry: 10\nevent: message\ndata: {\"jsonrpc\":\"2.0\"}\n\n",
		": comment\ndata: a\ndata: b\n\n",
		"data\n\nid\n\nretry:\n\n",
		"data: x",
		"::::\n\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var evs []sseEvent
		err := readSSE(bytes.NewReader(raw), func(ev sseEvent) bool {
			if len(ev.data) > maxLine {
				t.Fatalf("event of %d bytes delivered", len(ev.data))
			}
			evs = append(evs, ev)
			return true
		})
		if err == nil {
			t.Fatal("readSSE returned nil without being stopped")
		}
		if bytes.IndexByte(raw, '\r') >= 0 {
			return
		}

		// CRLF line ends must read exactly like LF.
		var crlf []sseEvent
		err2 := readSSE(bytes.NewReader(bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))), func(ev sseEvent) bool {
			crlf = append(crlf, ev)
			return true
		})
		if (err == nil) != (err2 == nil) || len(crlf) != len(evs) {
			t.Fatalf("LF: %d events (%v); CRLF: %d events (%v)", len(evs), err, len(crlf), err2)
		}
		for i := range evs {
			a, b := evs[i], crlf[i]
			if a.id != b.id || a.event != b.event || a.retry != b.retry || !bytes.Equal(a.data, b.data) {
				t.Fatalf("event %d differs: LF %+v, CRLF %+v", i, a, b)
			}
		}

		// Any payload framed as data lines comes back unchanged.
		framed := "id: 1\ndata: " + strings.ReplaceAll(string(raw), "\n", "\ndata: ") + "\n\n"
		got, err := collectSSE(t, framed)
		if !errors.Is(err, io.EOF) || len(got) != 1 || !bytes.Equal(got[0].data, raw) || got[0].id != "1" {
			t.Fatalf("framed payload %q came back as %+v (%v)", raw, got, err)
		}
	})
}
