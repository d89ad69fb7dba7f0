package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/glintlive/glint/hlsbridge"
)

const vodUsage = `Usage: glint vod list [--data-dir DIR] [--json]
       glint vod export [--data-dir DIR] [--ffmpeg PATH] [-o FILE] ID
       glint vod delete [--data-dir DIR] ID...

Recordings live in DATA_DIR/vod/{stream}/{start}/; ID is "{stream}/{start}", as listed.
export stitches an ended recording into one MP4 with its chapters (stream start,
reconnects, the host's markers), with a progress bar: by default the recording's own
vod.mp4, which the node makes by itself when a stream ends.
`

// vodCmd runs 'glint vod'.
func vodCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, vodUsage)
		return errors.New("vod: say list or delete")
	}
	fs := flag.NewFlagSet("glint vod "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultConfig().DataDir, "the node's data directory")
	asJSON := fs.Bool("json", false, "list as JSON")
	ffmpeg := fs.String("ffmpeg", "ffmpeg", "export: the ffmpeg binary")
	out := fs.String("o", "", "export: the MP4 to write (default the recording's vod.mp4)")
	fs.Usage = func() { fmt.Fprint(stderr, vodUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir := filepath.Join(*dataDir, "vod")
	switch args[0] {
	case "list":
		vods, err := hlsbridge.ListVODs(dir)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(vods)
		}
		if len(vods) == 0 {
			fmt.Fprintln(stdout, "no recordings in", dir)
			return nil
		}
		for _, v := range vods {
			state := "ended"
			switch {
			case v.Live:
				state = "live or cut off"
			case v.CutOff:
				state = "cut off by a crash"
			}
			if v.MP4 != "" {
				state += ", mp4"
			}
			fmt.Fprintf(stdout, "%-40s %8.1f s  %s\n", v.ID, v.Duration, state)
		}
		return nil
	case "export":
		if fs.NArg() != 1 {
			return errors.New("vod export: which recording? (one ID as vod list prints it)")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		id := fs.Arg(0)
		bar := &progressBar{w: stderr, label: "exporting " + id, last: -1}
		err := hlsbridge.Stitch(ctx, *ffmpeg, dir, id, *out, bar.set)
		bar.end()
		if err != nil {
			return fmt.Errorf("vod export: %w", err)
		}
		path := *out
		if path == "" {
			path = filepath.Join(dir, filepath.FromSlash(id), "vod.mp4")
		}
		fmt.Fprintln(stdout, "wrote", path)
		return nil
	case "delete":
		if fs.NArg() == 0 {
			return errors.New("vod delete: which recordings? (IDs as vod list prints them)")
		}
		var errs []error
		for _, id := range fs.Args() {
			if err := hlsbridge.DeleteVOD(dir, id); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintln(stdout, "deleted", id)
		}
		return errors.Join(errs...)
	}
	fmt.Fprint(stderr, vodUsage)
	return fmt.Errorf("vod: unknown command %q", args[0])
}

// progressBar draws a long job's progress on one line of w, redrawn
// whenever the whole percentage changes.
type progressBar struct {
	w     io.Writer
	label string
	last  int
}

const barWidth = 30

func (b *progressBar) set(frac float64) {
	pct := int(frac * 100)
	if pct == b.last {
		return
	}
	b.last = pct
	n := pct * barWidth / 100
	fmt.Fprintf(b.w, "\r%s [%s%s] %3d%%", b.label, strings.Repeat("#", n), strings.Repeat("-", barWidth-n), pct)
}

// end finishes the bar's line.
func (b *progressBar) end() {
	if b.last >= 0 {
		fmt.Fprintln(b.w)
	}
}
