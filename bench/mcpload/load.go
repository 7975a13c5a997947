package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// closeTimeout bounds closing all sessions at the end of a run; sessions not
// closed by then are abandoned to process exit.
const closeTimeout = 30 * time.Second

// errorPause keeps a session whose calls fail fast (a target that went away)
// from spinning a CPU that the target may need.
const errorPause = 10 * time.Millisecond

// headerTransport adds fixed headers to every request, replacing any value
// the SDK set for the same name.
type headerTransport struct {
	base   http.RoundTripper
	header http.Header
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, vs := range t.header {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = vs[0]
			continue
		}
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	return t.base.RoundTrip(req)
}

// newHTTPClient returns the client shared by all sessions. Each session may
// hold two connections at once (a POST and its standalone SSE GET), so the
// idle pool keeps room for 2n of them: a smaller pool would close and redial
// connections under load and measure TCP setup instead of the target.
func newHTTPClient(n int, header http.Header) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = 2*n + 16
	var rt http.RoundTripper = t
	if len(header) > 0 {
		rt = &headerTransport{base: t, header: header}
	}
	return &http.Client{Transport: rt}
}

// openSessions initialises up to n sessions, cfg.parallel at a time. It stops
// starting new ones after the first failure, so that a target that refuses
// sessions (or is down) is noticed within about one timeout, and returns the
// sessions opened so far together with that failure.
func openSessions(ctx context.Context, cfg *config, n int) ([]*mcp.ClientSession, error) {
	httpClient := newHTTPClient(n, cfg.headers)
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpload", Version: "0.1.0"}, nil)
	var opts *mcp.ClientSessionOptions
	if cfg.protocol != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: cfg.protocol}
	}

	var (
		next     atomic.Int64
		failed   atomic.Bool
		mu       sync.Mutex
		opened   []*mcp.ClientSession
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(cfg.parallel, n) {
		wg.Go(func() {
			for !failed.Load() && ctx.Err() == nil && next.Add(1) <= int64(n) {
				cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
				cs, err := client.Connect(cctx, &mcp.StreamableClientTransport{
					Endpoint:             cfg.url,
					HTTPClient:           httpClient,
					DisableStandaloneSSE: !cfg.sse,
				}, opts)
				if err == nil && cfg.idle == 0 {
					// Like any MCP client, read the tool list before calling:
					// Mandate refuses calls of tools a session was not shown
					// (when authentication is on). Idle sessions only
					// initialize: that is what the per-session memory target
					// measures.
					for _, lerr := range cs.Tools(cctx, nil) {
						if lerr != nil {
							err = fmt.Errorf("tools/list: %w", lerr)
							cs.Close()
							break
						}
					}
				}
				cancel()
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					failed.Store(true)
				} else {
					opened = append(opened, cs)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		firstErr = fmt.Errorf("open session %d of %d: %w", len(opened)+1, n, firstErr)
	}
	return opened, firstErr
}

// closeSessions closes every session, a few at a time, and gives up after
// closeTimeout.
func closeSessions(sessions []*mcp.ClientSession) {
	ch := make(chan *mcp.ClientSession)
	var wg sync.WaitGroup
	for range min(32, len(sessions)) {
		wg.Go(func() {
			for cs := range ch {
				_ = cs.Close()
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, cs := range sessions {
			ch <- cs
		}
		close(ch)
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(closeTimeout):
	}
}

// loadReport is the result of a load run. Pointer fields are nil (and absent
// from JSON) when no PID was given.
type loadReport struct {
	Mode       string  `json:"mode"`
	URL        string  `json:"url"`
	Tool       string  `json:"tool"`
	Sessions   int     `json:"sessions"`
	WarmupS    float64 `json:"warmup_s"`
	WindowS    float64 `json:"window_s"`
	Calls      int     `json:"calls"`
	CallsPerS  float64 `json:"calls_per_s"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	MeanMs     float64 `json:"mean_ms"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`

	PIDs         []int    `json:"pids,omitempty"`
	CPUS         *float64 `json:"cpu_s,omitempty"`
	CPUUsPerCall *float64 `json:"cpu_us_per_call,omitempty"`
	PeakRSSKiB   *int64   `json:"peak_rss_kib,omitempty"`
	RSSKiB       *int64   `json:"rss_kib,omitempty"`
}

// worker is one session's share of a load run. Only calls that start and
// finish inside the window [t0, t1] are counted, so warmup and the calls in
// flight at either edge do not blur the numbers.
type worker struct {
	samples  []time.Duration
	errors   int
	firstErr error
}

func (w *worker) run(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams, t0, t1 time.Time, timeout time.Duration) {
	w.samples = make([]time.Duration, 0, 1<<14)
	for ctx.Err() == nil {
		start := time.Now()
		if !start.Before(t1) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := cs.CallTool(cctx, params)
		cancel()
		end := time.Now()
		if err == nil && res.IsError {
			err = toolError(res)
		}
		counted := !start.Before(t0) && !end.After(t1)
		switch {
		case err != nil && counted:
			w.errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			fallthrough
		case err != nil:
			time.Sleep(errorPause)
		case counted:
			w.samples = append(w.samples, end.Sub(start))
		}
	}
}

// toolError turns a result with isError set into an error carrying its text.
func toolError(res *mcp.CallToolResult) error {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return fmt.Errorf("tool returned isError: %s", strings.Join(parts, " "))
}

func runLoad(ctx context.Context, cfg *config) (*loadReport, error) {
	sessions, err := openSessions(ctx, cfg, cfg.sessions)
	defer closeSessions(sessions)
	if err != nil {
		return nil, err
	}

	params := &mcp.CallToolParams{Name: cfg.tool, Arguments: cfg.args}
	t0 := time.Now().Add(cfg.warmup)
	t1 := t0.Add(cfg.duration)
	workers := make([]worker, len(sessions))
	var wg sync.WaitGroup
	for i, cs := range sessions {
		wg.Go(func() { workers[i].run(ctx, cs, params, t0, t1, cfg.timeout) })
	}
	defer wg.Wait()

	rep := &loadReport{
		Mode:     "load",
		URL:      cfg.url,
		Tool:     cfg.tool,
		Sessions: cfg.sessions,
		WarmupS:  cfg.warmup.Seconds(),
		WindowS:  cfg.duration.Seconds(),
		PIDs:     cfg.pids,
	}
	var cpu0, cpu1 float64
	var mem memory
	if !sleepUntil(ctx, t0) {
		return nil, ctx.Err()
	}
	if len(cfg.pids) > 0 {
		if cpu0, err = cpuSeconds(cfg.pids); err != nil {
			return nil, fmt.Errorf("target CPU at window start: %w", err)
		}
	}
	if !sleepUntil(ctx, t1) {
		return nil, ctx.Err()
	}
	if len(cfg.pids) > 0 {
		if cpu1, err = cpuSeconds(cfg.pids); err != nil {
			return nil, fmt.Errorf("target CPU at window end: %w", err)
		}
		if mem, err = readMemory(cfg.pids); err != nil {
			return nil, fmt.Errorf("target memory: %w", err)
		}
	}
	wg.Wait()

	var all []time.Duration
	for i := range workers {
		w := &workers[i]
		all = append(all, w.samples...)
		rep.Errors += w.errors
		if w.firstErr != nil && rep.FirstError == "" {
			rep.FirstError = w.firstErr.Error()
		}
	}
	lat := summarise(all)
	rep.Calls = lat.N
	rep.CallsPerS = float64(lat.N) / cfg.duration.Seconds()
	rep.MeanMs, rep.P50Ms, rep.P99Ms, rep.P999Ms, rep.MaxMs = ms(lat.Mean), ms(lat.P50), ms(lat.P99), ms(lat.P999), ms(lat.Max)
	if len(cfg.pids) > 0 {
		cpu := cpu1 - cpu0
		rep.CPUS = &cpu
		if lat.N > 0 {
			perCall := cpu * 1e6 / float64(lat.N)
			rep.CPUUsPerCall = &perCall
		}
		rep.PeakRSSKiB, rep.RSSKiB = &mem.HWM, &mem.RSS
	}
	return rep, nil
}

func (r *loadReport) printText(w io.Writer) {
	fmt.Fprintf(w, "target        %s  tool %s  sessions %d\n", r.URL, r.Tool, r.Sessions)
	fmt.Fprintf(w, "window        %.1f s after %.1f s warmup\n", r.WindowS, r.WarmupS)
	fmt.Fprintf(w, "calls         %d  (%.1f calls/s)\n", r.Calls, r.CallsPerS)
	fmt.Fprintf(w, "errors        %d", r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "  (first: %s)", r.FirstError)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "latency ms    p50 %.3f  p99 %.3f  p99.9 %.3f  mean %.3f  max %.3f\n",
		r.P50Ms, r.P99Ms, r.P999Ms, r.MeanMs, r.MaxMs)
	if r.CPUS != nil {
		fmt.Fprintf(w, "target CPU    %.2f s in the window", *r.CPUS)
		if r.CPUUsPerCall != nil {
			fmt.Fprintf(w, ", %.1f µs/call", *r.CPUUsPerCall)
		}
		fmt.Fprintf(w, "  (pids %s)\n", joinInts(r.PIDs))
		fmt.Fprintf(w, "target RSS    peak %d KiB (VmHWM), now %d KiB (VmRSS)\n", *r.PeakRSSKiB, *r.RSSKiB)
	}
}

// idleReport is the result of an idle run.
type idleReport struct {
	Mode          string   `json:"mode"`
	URL           string   `json:"url"`
	Sessions      int      `json:"sessions"`
	Opened        int      `json:"opened"`
	Failed        int      `json:"failed"`
	FirstError    string   `json:"first_error,omitempty"`
	OpenS         float64  `json:"open_s"`
	SettleS       float64  `json:"settle_s"`
	PIDs          []int    `json:"pids,omitempty"`
	RSSBeforeKiB  *int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB   *int64   `json:"rss_after_kib,omitempty"`
	KiBPerSession *float64 `json:"kib_per_session,omitempty"`
	PeakRSSKiB    *int64   `json:"peak_rss_kib,omitempty"`
}

// runIdle measures what an initialised but unused session costs the target.
// A target that refuses sessions part-way (a per-client cap, say) is not an
// error here: the report says how many opened and why the next one failed.
func runIdle(ctx context.Context, cfg *config) (*idleReport, error) {
	rep := &idleReport{Mode: "idle", URL: cfg.url, Sessions: cfg.idle, SettleS: cfg.settle.Seconds(), PIDs: cfg.pids}
	var before memory
	if len(cfg.pids) > 0 {
		var err error
		if before, err = readMemory(cfg.pids); err != nil {
			return nil, fmt.Errorf("target memory before: %w", err)
		}
	}

	start := time.Now()
	sessions, openErr := openSessions(ctx, cfg, cfg.idle)
	defer closeSessions(sessions)
	rep.OpenS = time.Since(start).Seconds()
	rep.Opened = len(sessions)
	rep.Failed = cfg.idle - len(sessions)
	if openErr != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.FirstError = openErr.Error()
	}
	if !sleepUntil(ctx, time.Now().Add(cfg.settle)) {
		return nil, ctx.Err()
	}

	if len(cfg.pids) > 0 {
		after, err := readMemory(cfg.pids)
		if err != nil {
			return nil, fmt.Errorf("target memory after: %w", err)
		}
		rep.RSSBeforeKiB, rep.RSSAfterKiB, rep.PeakRSSKiB = &before.RSS, &after.RSS, &after.HWM
		if rep.Opened > 0 {
			per := float64(after.RSS-before.RSS) / float64(rep.Opened)
			rep.KiBPerSession = &per
		}
	}
	if rep.Opened == 0 {
		return rep, errors.New(rep.FirstError)
	}
	return rep, nil
}

func (r *idleReport) printText(w io.Writer) {
	fmt.Fprintf(w, "target        %s  idle sessions %d\n", r.URL, r.Sessions)
	fmt.Fprintf(w, "opened        %d in %.1f s, then settled %.1f s", r.Opened, r.OpenS, r.SettleS)
	if r.Failed > 0 {
		fmt.Fprintf(w, "; %d not opened (%s)", r.Failed, r.FirstError)
	}
	fmt.Fprintln(w)
	if r.RSSBeforeKiB != nil {
		fmt.Fprintf(w, "target RSS    before %d KiB, after %d KiB (VmRSS), peak %d KiB (VmHWM)  (pids %s)\n",
			*r.RSSBeforeKiB, *r.RSSAfterKiB, *r.PeakRSSKiB, joinInts(r.PIDs))
	}
	if r.KiBPerSession != nil {
		fmt.Fprintf(w, "per session   %.1f KiB\n", *r.KiBPerSession)
	}
}

// sleepUntil waits until t and reports whether it got there before ctx was
// cancelled.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
