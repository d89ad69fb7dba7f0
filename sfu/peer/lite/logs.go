package lite

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Logs routes pion's warnings (at debug level) and errors (at warn) to
// log; its debug chatter is dropped. Glint's publishers use it too.
func Logs(log *slog.Logger) logging.LoggerFactory { return pionLogs{log} }

type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(string)          {}
func (l pionLogger) Debugf(string, ...any) {}
func (l pionLogger) Info(string)           {}
func (l pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(msg string)       { l.log.Log(context.Background(), slog.LevelDebug, msg) }
func (l pionLogger) Warnf(f string, a ...any) {
	l.log.Log(context.Background(), slog.LevelDebug, fmt.Sprintf(f, a...))
}
func (l pionLogger) Error(msg string) { l.log.Warn(msg) }
func (l pionLogger) Errorf(f string, a ...any) {
	l.log.Warn(fmt.Sprintf(f, a...))
}
