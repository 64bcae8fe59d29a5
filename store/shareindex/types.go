package shareindex

import (
	"net/http"
	"path"
	"strings"
)

// SniffLen is how many leading bytes content sniffing looks at (the most
// net/http.DetectContentType considers).
const SniffLen = 512

// extTypes maps lower-case extensions to the short type words peers see.
// Extensions win over sniffing: a .docx is a zip inside, but users know it
// as a document.
var extTypes = map[string]string{
	".txt": "text", ".md": "text", ".csv": "text", ".tsv": "text", ".log": "text",
	".json": "text", ".xml": "text", ".yaml": "text", ".yml": "text", ".toml": "text",
	".ini": "text", ".conf": "text", ".go": "text", ".c": "text", ".h": "text",
	".py": "text", ".js": "text", ".ts": "text", ".css": "text", ".sh": "text",
	".java": "text", ".rs": "text", ".tex": "text", ".srt": "text",
	".html": "html", ".htm": "html",
	".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".gif": "gif", ".webp": "webp",
	".bmp": "bmp", ".svg": "svg", ".ico": "ico", ".tif": "tiff", ".tiff": "tiff",
	".pdf": "pdf", ".ps": "ps",
	".zip": "zip", ".gz": "gz", ".tgz": "gz", ".bz2": "bz2", ".xz": "xz", ".zst": "zst",
	".tar": "tar", ".7z": "7z", ".rar": "rar",
	".mp3": "mp3", ".wav": "wav", ".ogg": "ogg", ".flac": "flac", ".m4a": "m4a",
	".mp4": "mp4", ".m4v": "mp4", ".mkv": "mkv", ".webm": "webm", ".avi": "avi", ".mov": "mov",
	".doc": "doc", ".docx": "doc", ".odt": "doc", ".rtf": "doc",
	".xls": "sheet", ".xlsx": "sheet", ".ods": "sheet",
	".ppt": "slides", ".pptx": "slides", ".odp": "slides",
	".epub": "epub", ".iso": "iso", ".exe": "exe", ".deb": "pkg", ".rpm": "pkg", ".apk": "pkg",
	".ttf": "font", ".otf": "font", ".woff": "font", ".woff2": "font",
	".wasm": "wasm",
}

// mimeTypes maps what net/http.DetectContentType reports (without
// parameters) to type words, for files whose extension says nothing.
var mimeTypes = map[string]string{
	"text/plain": "text", "text/html": "html", "text/xml": "text",
	"application/json": "text", "application/javascript": "text",
	"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
	"image/bmp": "bmp", "image/x-icon": "ico",
	"application/pdf": "pdf", "application/postscript": "ps",
	"application/zip": "zip", "application/x-gzip": "gz", "application/x-rar-compressed": "rar",
	"audio/mpeg": "mp3", "audio/wave": "wav", "audio/ogg": "ogg", "audio/aiff": "aiff",
	"application/ogg": "ogg", "audio/midi": "midi",
	"video/mp4": "mp4", "video/webm": "webm", "video/avi": "avi",
	"font/ttf": "font", "font/otf": "font", "font/woff": "font", "font/woff2": "font",
	"application/wasm": "wasm",
}

// TypeOf returns the short type word for a file: by extension when it is a
// known one, otherwise by sniffing head (the file's first SniffLen bytes, or
// fewer), otherwise "bin". An empty file of unknown extension is "text".
func TypeOf(name string, head []byte) string {
	if t, ok := extTypes[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	if len(head) == 0 {
		return "text"
	}
	mime := http.DetectContentType(head)
	if i := strings.IndexByte(mime, ';'); i >= 0 {
		mime = mime[:i]
	}
	if t, ok := mimeTypes[mime]; ok {
		return t
	}
	return "bin"
}

// needsSniff reports whether TypeOf needs the content of name.
func needsSniff(name string) bool {
	_, ok := extTypes[strings.ToLower(path.Ext(name))]
	return !ok
}
