package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of utime and stime in /proc/PID/stat. The kernel reports
// these fields in USER_HZ, which is 100 on every architecture Linux exports
// to user space, whatever the kernel's internal tick rate.
const userHZ = 100

// cpuSeconds returns the user plus system CPU time consumed so far by the
// processes in pids, in seconds. Children are not included.
func cpuSeconds(pids []int) (float64, error) {
	var ticks uint64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		t, err := parseStatTicks(b)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += t
	}
	return float64(ticks) / userHZ, nil
}

// parseStatTicks returns utime+stime from the contents of /proc/PID/stat.
// The command name (field 2) may contain spaces and parentheses, so fields
// are counted from the last ')'.
func parseStatTicks(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	// After ')' come field 3 (state) onwards; utime and stime are fields 14
	// and 15, at indexes 11 and 12 here.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// memory is resident-set information from /proc/PID/status, in KiB.
type memory struct {
	// HWM is the peak resident set size (VmHWM).
	HWM int64
	// RSS is the current resident set size (VmRSS).
	RSS int64
}

// readMemory sums VmHWM and VmRSS over pids.
func readMemory(pids []int) (memory, error) {
	var total memory
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return memory{}, err
		}
		m, err := parseStatus(b)
		if err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
		}
		total.HWM += m.HWM
		total.RSS += m.RSS
	}
	return total, nil
}

// parseStatus extracts VmHWM and VmRSS from the contents of /proc/PID/status.
func parseStatus(status []byte) (memory, error) {
	var m memory
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("%s: unexpected value %q", key, rest)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmHWM" {
			m.HWM = v
		} else {
			m.RSS = v
		}
		seen++
	}
	if seen != 2 {
		return memory{}, fmt.Errorf("VmHWM or VmRSS missing (is the process a zombie?)")
	}
	return m, nil
}
