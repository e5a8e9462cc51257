package image

// UnpackStats describes an unpacked layer (see Unpack). It is defined once
// for every platform, so the Linux unpacker and the stub cannot drift.
type UnpackStats struct {
	Entries int
	Bytes   int64 // bytes of regular file content
	// SkippedDevices counts the character and block devices (and hard
	// links to them) that were not created.
	SkippedDevices int
}
