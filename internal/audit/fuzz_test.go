package audit_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/audit"
)

// FuzzVerifyFile feeds arbitrary files to the export parser, which reads
// files that may come from anywhere: it must never panic, and a file it
// accepts must hold only chains that verify.
func FuzzVerifyFile(f *testing.F) {
	st := newMemory()
	o := fixedOptions(f)
	o.CheckpointRecords = 2
	l := openLog(f, st, "c1", o)
	for i := range 3 {
		mustAppend(f, l, decision(i))
	}
	closeLog(f, l)
	var export bytes.Buffer
	if err := audit.Export(context.Background(), st, &export); err != nil {
		f.Fatal(err)
	}
	f.Add(export.Bytes())
	lines := strings.SplitAfter(export.String(), "\n")
	f.Add([]byte(strings.Join(lines[1:], "")))
	f.Add([]byte(lines[0] + lines[0]))
	f.Add([]byte(`{"record":{"seq":1},"hash":""}`))
	f.Add([]byte(`{"checkpoint":{"chain":"c1","seq":-1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := audit.VerifyFile(bytes.NewReader(data), testKeys())
		if err == nil && rep == nil {
			t.Fatal("no report and no error")
		}
	})
}
