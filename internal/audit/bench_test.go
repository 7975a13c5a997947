package audit_test

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
)

// BenchmarkAppendSQLite measures durable appends from many concurrent
// callers, as the gateway makes them: a decision record with arguments to
// redact and digest, into a SQLite file in WAL mode, each Append returning
// only after its batch committed. It reports records per second.
func BenchmarkAppendSQLite(b *testing.B) {
	for _, callers := range []int{1, 16, 128, 512} {
		b.Run(callersName(callers), func(b *testing.B) {
			st := &countingStore{Store: openSQLite(b, filepath.Join(b.TempDir(), "mandate.db"))}
			l := openLog(b, st, "bench", &audit.Options{Signer: testSigner(), Redactor: testRedactor(b)})
			rec := decision(1)
			b.SetParallelism(max(1, callers/max(1, testingProcs())))
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(context.Background(), rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(st.appends.Load()), "records/txn")
			// CPU time per record, which other load on the machine does not
			// inflate as it does wall time.
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/record")
			b.StopTimer()
			closeLog(b, l)
		})
	}
}

func callersName(n int) string { return "callers=" + strconv.Itoa(n) }

func testingProcs() int { return runtime.GOMAXPROCS(0) }

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
