// Command loadgen is an open-loop HTTP load generator for the Tenure benchmarks.
//
// It sends -rate requests per second for -duration over at most -conns keep-alive
// connections. Request i is due at start + i/rate whatever happened to earlier
// requests, and its latency is measured from that due time, not from when a
// connection became free: a stalled server shows up as queueing delay in the
// percentiles instead of silently lowering the offered rate (no coordinated
// omission). A response that is not 2xx, or a transport error, counts as an error.
// The dispatcher's own lateness (send lag: due time to the moment the request is
// handed to the HTTP client) is reported too; it is part of every latency.
// The result is one JSON object on stdout. Standard library only.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type result struct {
	URL          string  `json:"url"`
	Rate         float64 `json:"rate"`
	Duration     float64 `json:"duration_s"`
	Conns        int     `json:"conns"`
	Sent         int     `json:"sent"`
	Completed    int     `json:"completed"`
	Errors       int     `json:"errors"`
	Non2xx       int     `json:"non_2xx"`
	Transport    int     `json:"transport_errors"`
	FirstError   string  `json:"first_error,omitempty"`
	AchievedRate float64 `json:"achieved_rate"`
	P50          float64 `json:"p50_ms"`
	P90          float64 `json:"p90_ms"`
	P99          float64 `json:"p99_ms"`
	P999         float64 `json:"p999_ms"`
	Max          float64 `json:"max_ms"`
	Mean         float64 `json:"mean_ms"`
	SendLagP50   float64 `json:"send_lag_p50_ms"`
	SendLagP99   float64 `json:"send_lag_p99_ms"`
	MaxSendLag   float64 `json:"max_send_lag_ms"`
}

// sleepUntil blocks in nanosleep(2): Go 1.19's timers wake up to ~1 ms late (the
// netpoller waits in whole milliseconds), which would show up as latency.
func sleepUntil(due time.Time) {
	for {
		wait := time.Until(due)
		if wait <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(wait))
		_ = syscall.Nanosleep(&ts, nil)
	}
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	if i < 0 {
		i = 0
	}
	return float64(sorted[i]) / 1e6
}

func main() {
	url := flag.String("url", "", "target URL")
	method := flag.String("method", "POST", "HTTP method")
	bodiesPath := flag.String("bodies", "", "JSON file: array of request bodies (strings), rotated")
	rate := flag.Float64("rate", 100, "requests per second (open loop)")
	duration := flag.Duration("duration", 5*time.Second, "how long to send")
	conns := flag.Int("conns", 32, "maximum keep-alive connections")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	var headers headerList
	flag.Var(&headers, "H", "header 'Name: value' (repeatable)")
	flag.Parse()
	if *url == "" || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: -url and a positive -rate are required")
		os.Exit(2)
	}
	bodies := []string{""}
	if *bodiesPath != "" {
		raw, err := os.ReadFile(*bodiesPath)
		if err == nil {
			err = json.Unmarshal(raw, &bodies)
		}
		if err != nil || len(bodies) == 0 {
			fmt.Fprintln(os.Stderr, "loadgen: cannot read bodies:", err)
			os.Exit(2)
		}
	}
	header := http.Header{}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintln(os.Stderr, "loadgen: bad header", h)
			os.Exit(2)
		}
		header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if header.Get("Content-Type") == "" && *bodiesPath != "" {
		header.Set("Content-Type", "application/json")
	}
	client := &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			MaxConnsPerHost:     *conns,
			MaxIdleConns:        *conns,
			MaxIdleConnsPerHost: *conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}

	total := int(*rate * duration.Seconds())
	latencies := make([]time.Duration, total)
	var mu sync.Mutex
	res := result{URL: *url, Rate: *rate, Duration: duration.Seconds(), Conns: *conns}
	var wg sync.WaitGroup
	interval := float64(time.Second) / *rate
	lags := make([]time.Duration, total)
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		sleepUntil(due)
		lags[i] = time.Since(due)
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			req, _ := http.NewRequest(*method, *url, bytes.NewBufferString(bodies[i%len(bodies)]))
			req.Header = header.Clone()
			resp, err := client.Do(req)
			status := 0
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
			}
			latency := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			latencies[i] = latency
			res.Completed++
			switch {
			case err != nil:
				res.Transport++
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
			case status < 200 || status > 299:
				res.Non2xx++
				if res.FirstError == "" {
					res.FirstError = fmt.Sprintf("HTTP %d", status)
				}
			}
		}(i, due)
	}
	sendSpan := time.Since(start)
	wg.Wait()
	res.Sent = total
	res.Errors = res.Non2xx + res.Transport
	res.AchievedRate = float64(total) / sendSpan.Seconds()
	sort.Slice(lags, func(a, b int) bool { return lags[a] < lags[b] })
	res.SendLagP50 = percentile(lags, 0.50)
	res.SendLagP99 = percentile(lags, 0.99)
	res.MaxSendLag = percentile(lags, 1.0)
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	var sum time.Duration
	for _, l := range latencies {
		sum += l
	}
	if total > 0 {
		res.Mean = float64(sum) / float64(total) / 1e6
		res.Max = float64(latencies[total-1]) / 1e6
	}
	res.P50 = percentile(latencies, 0.50)
	res.P90 = percentile(latencies, 0.90)
	res.P99 = percentile(latencies, 0.99)
	res.P999 = percentile(latencies, 0.999)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Errors > 0 {
		os.Exit(1)
	}
}
