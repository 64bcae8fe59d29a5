//go:build !unix

package shareindex

import "io/fs"

// fileID returns 0, 0 where the platform has no portable inode number; size
// and mtime then identify a file version alone.
func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }
