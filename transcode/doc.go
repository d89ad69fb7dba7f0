// Package transcode runs ffmpeg for Glint: it picks the H.264 encoder the
// machine can use (a GPU's when a trial encode on it succeeds, else
// libx264 tuned for low latency) and supervises ffmpeg children, which are
// restarted with backoff when they crash or stall and never outlive their
// owner. It depends on no other Glint package.
package transcode
