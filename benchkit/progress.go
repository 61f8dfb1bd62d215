package benchkit

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progressReporter rewrites one status line on a terminal every
// progressInterval until stopped.
type progressReporter struct {
	w     io.Writer
	line  func(elapsed time.Duration) string
	rate  func() int64 // if set, a count whose rate per second is shown
	start time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

// startProgress starts reporting on w; with a nil w it reports nothing. If
// rate is not nil, the line also shows how fast its count grows.
func startProgress(w io.Writer, line func(elapsed time.Duration) string, rate func() int64) *progressReporter {
	p := &progressReporter{w: w, line: line, rate: rate, start: time.Now(), done: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Add(1)
	go p.loop()
	return p
}

func (p *progressReporter) loop() {
	defer p.wg.Done()
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	var lastCount int64
	lastAt := p.start
	for {
		select {
		case <-p.done:
			// The last line shows the average rate of the whole run.
			perSec := int64(-1)
			if p.rate != nil {
				perSec = int64(float64(p.rate()) / time.Since(p.start).Seconds())
			}
			p.print(perSec)
			fmt.Fprintln(p.w)
			return
		case now := <-t.C:
			perSec := int64(-1)
			if p.rate != nil {
				c := p.rate()
				perSec = int64(float64(c-lastCount) / now.Sub(lastAt).Seconds())
				lastCount, lastAt = c, now
			}
			p.print(perSec)
		}
	}
}

// print rewrites the line: carriage return, the text, clear to end of line.
func (p *progressReporter) print(perSec int64) {
	s := p.line(time.Since(p.start))
	if perSec >= 0 {
		s += fmt.Sprintf("  %d ops/s", perSec)
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", s)
}

// stop prints the final state and ends the line.
func (p *progressReporter) stop() {
	close(p.done)
	p.wg.Wait()
}

// bar draws a 20-character progress bar for a fraction in [0, 1].
func bar(frac float64) string {
	const width = 20
	frac = min(max(frac, 0), 1)
	n := int(frac * width)
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}
