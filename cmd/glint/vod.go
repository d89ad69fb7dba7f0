package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/glintlive/glint/hlsbridge"
)

const vodUsage = `Usage: glint vod list [--data-dir DIR] [--json]
       glint vod delete [--data-dir DIR] ID...

Recordings live in DATA_DIR/vod/{stream}/{start}/; ID is "{stream}/{start}", as listed.
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
			if v.Live {
				state = "live or cut off"
			}
			fmt.Fprintf(stdout, "%-40s %8.1f s  %s\n", v.ID, v.Duration, state)
		}
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
