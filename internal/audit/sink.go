package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// fileSink appends export lines to a file and syncs them. Only the Log's
// writer goroutine uses it.
type fileSink struct {
	path string
	f    *os.File
	// size is the file's length up to the last line known durable.
	size int64
	// backlog holds lines whose write failed, written again, first, by the
	// next write.
	backlog []byte
}

// openFileSink opens path for appending, creating it owner-only. A last
// line cut short by a crash is dropped: it was never reported durable.
func openFileSink(path string) (*fileSink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	s := &fileSink{path: path, f: f, size: fi.Size()}
	if s.size > 0 {
		end, err := s.lastLineEnd()
		if err == nil && end != s.size {
			err = f.Truncate(end)
			s.size = end
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open audit file %s: %w", path, err)
		}
	}
	return s, nil
}

// lastLineEnd returns the offset just after the file's last newline.
func (s *fileSink) lastLineEnd() (int64, error) {
	buf := make([]byte, 64<<10)
	for end := s.size; end > 0; {
		start := max(0, end-int64(len(buf)))
		chunk := buf[:end-start]
		if _, err := s.f.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// lastSeq returns the highest sequence of chain the file holds, reading it
// from the end, or 0 when it holds none.
func (s *fileSink) lastSeq(chain string) (int64, error) {
	if s.size == 0 {
		return 0, nil
	}
	// Lines are read whole, from the end backwards, in growing windows.
	for window := int64(1 << 20); ; window *= 4 {
		start := max(0, s.size-window)
		chunk := make([]byte, s.size-start)
		if _, err := s.f.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read audit file %s: %w", s.path, err)
		}
		lines := bytes.Split(bytes.TrimSuffix(chunk, []byte("\n")), []byte("\n"))
		first := 0
		if start > 0 {
			first = 1 // The window may start mid-line.
		}
		for i := len(lines) - 1; i >= first; i-- {
			var l exportLine
			if err := json.Unmarshal(lines[i], &l); err != nil {
				return 0, fmt.Errorf("audit file %s: unreadable line near its end: %w", s.path, err)
			}
			if l.Checkpoint != nil && l.Checkpoint.Chain == chain {
				return l.Checkpoint.Seq, nil
			}
			if l.Record != nil {
				var pos struct {
					Chain string `json:"chain"`
					Seq   int64  `json:"seq"`
				}
				if err := json.Unmarshal(l.Record, &pos); err != nil {
					return 0, fmt.Errorf("audit file %s: unreadable record near its end: %w", s.path, err)
				}
				if pos.Chain == chain {
					return pos.Seq, nil
				}
			}
		}
		if start == 0 {
			return 0, nil
		}
	}
}

// write appends lines after any backlog and syncs. On failure the file is
// cut back to its last durable line and everything unwritten is kept for
// the next write, so the file never holds a gap or half a line.
func (s *fileSink) write(lines []byte) error {
	s.backlog = append(s.backlog, lines...)
	if len(s.backlog) == 0 {
		return nil
	}
	n, err := s.f.Write(s.backlog)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		if n > 0 {
			err = errors.Join(err, s.f.Truncate(s.size))
		}
		return fmt.Errorf("write audit file %s: %w", s.path, err)
	}
	s.size += int64(n)
	s.backlog = s.backlog[:0]
	return nil
}

// flush writes the backlog, if any.
func (s *fileSink) flush() error { return s.write(nil) }

func (s *fileSink) close() error {
	err := s.f.Close()
	if len(s.backlog) > 0 {
		err = errors.Join(err, fmt.Errorf("audit file %s: %d bytes never written", s.path, len(s.backlog)))
	}
	return err
}
