//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// samples is one scrape of a Prometheus text exposition: each series (the
// metric name with its label set, as written) and its value.
type samples map[string]float64

// parseMetrics reads the Prometheus text format (version 0.0.4): comment
// lines are skipped, and every other line is `name{labels} value [timestamp]`.
// A tiny parser, rather than expfmt, because the bench needs a few gauges and
// counters and nothing of the metadata.
func parseMetrics(r io.Reader) (samples, error) {
	out := samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		// The series ends at the first space outside the label set; label
		// values may hold spaces and braces.
		end := -1
		inLabels, inString, escaped := false, false, false
		for i, c := range line {
			if inString {
				switch {
				case escaped:
					escaped = false
				case c == '\\':
					escaped = true
				case c == '"':
					inString = false
				}
				continue
			}
			if c == '"' && inLabels {
				inString = true
			} else if c == '{' {
				inLabels = true
			} else if c == '}' {
				inLabels = false
			} else if (c == ' ' || c == '\t') && !inLabels {
				end = i
				break
			}
		}
		if end <= 0 {
			return nil, fmt.Errorf("metrics: malformed line %q", line)
		}
		fields := strings.Fields(string(line[end:]))
		if len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("metrics: malformed line %q", line)
		}
		v, err := parseValue(fields[0])
		if err != nil {
			return nil, fmt.Errorf("metrics: line %q: %w", line, err)
		}
		out[string(line[:end])] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// get returns a series' value, and whether the scrape had it.
func (s samples) get(series string) (float64, bool) {
	v, ok := s[series]
	return v, ok
}

// Series the bench reads: the Go and process collectors every Vigil node
// (and the echo server) registers.
const (
	mCPU        = "process_cpu_seconds_total"
	mRSS        = "process_resident_memory_bytes"
	mMallocs    = "go_memstats_mallocs_total"
	mHeapInuse  = "go_memstats_heap_inuse_bytes"
	mStackInuse = "go_memstats_stack_inuse_bytes"
	mGoroutines = "go_goroutines"
	mAllocBytes = "go_memstats_alloc_bytes_total"
)

// scrape fetches and parses url (a /metrics endpoint).
func scrape(ctx context.Context, client *http.Client, url string) (samples, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	s, err := parseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return s, nil
}
