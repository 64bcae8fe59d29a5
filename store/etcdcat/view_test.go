package etcdcat

import (
	"slices"
	"testing"
	"time"

	"github.com/fxshell/fxsh/store"
)

// kvOp is one change as the watch delivers it.
type kvOp struct {
	del   bool
	key   string
	val   []byte
	lease int64
}

const vp = "/p/"

func putFileOp(addr string, lease int64, f store.File) kvOp {
	return kvOp{key: fileKey(vp, addr, lease, f.Name), val: appendFileRecord(nil, f), lease: lease}
}

func putServerOp(addr string, lease int64, files int) kvOp {
	return kvOp{key: serverKey(vp, addr), val: appendServerRecord(nil, serverRecord{Role: store.RoleServer, Files: files, Registered: time.Unix(1, 0)}), lease: lease}
}

func delOp(key string) kvOp { return kvOp{del: true, key: key} }

func TestViewOrders(t *testing.T) {
	f1 := store.File{Name: "one", Hash: hashOf("1")}
	f2 := store.File{Name: "two", Hash: hashOf("2")}
	f3 := store.File{Name: "three", Hash: hashOf("3")}
	tests := []struct {
		name    string
		batches [][]kvOp // each batch is one watch response (flushed together)
		want    []string // names visible at the end
		servers int
		pending int
	}{
		{"files then server", [][]kvOp{{putFileOp("h:1", 7, f1)}, {putFileOp("h:1", 7, f2)}, {putServerOp("h:1", 7, 2)}},
			[]string{"one", "two"}, 1, 0},
		{"files without server stay hidden", [][]kvOp{{putFileOp("h:1", 7, f1), putFileOp("h:1", 7, f2)}},
			nil, 0, 2},
		{"replacement", [][]kvOp{
			{putFileOp("h:1", 7, f1), putServerOp("h:1", 7, 1)},
			{putFileOp("h:1", 8, f2)},
			{putFileOp("h:1", 8, f3), putServerOp("h:1", 8, 2)},
			{delOp(fileKey(vp, "h:1", 7, "one"))},
		}, []string{"three", "two"}, 1, 0},
		{"replacement before old files are deleted", [][]kvOp{
			{putFileOp("h:1", 7, f1), putServerOp("h:1", 7, 1)},
			{putFileOp("h:1", 8, f2), putServerOp("h:1", 8, 1)},
		}, []string{"two"}, 1, 1},
		{"lease revoked", [][]kvOp{
			{putFileOp("h:1", 7, f1), putFileOp("h:1", 7, f2), putServerOp("h:1", 7, 2)},
			{delOp(fileKey(vp, "h:1", 7, "one")), delOp(fileKey(vp, "h:1", 7, "two")), delOp(serverKey(vp, "h:1"))},
		}, nil, 0, 0},
		{"server deleted first", [][]kvOp{
			{putFileOp("h:1", 7, f1), putServerOp("h:1", 7, 1)},
			{delOp(serverKey(vp, "h:1"))},
			{delOp(fileKey(vp, "h:1", 7, "one"))},
		}, nil, 0, 0},
		{"file key of another lease ignored", [][]kvOp{
			{putFileOp("h:1", 7, f1), putServerOp("h:1", 7, 1)},
			{putFileOp("h:1", 9, f2)},
		}, []string{"one"}, 1, 1},
		{"file added to a live registration", [][]kvOp{
			{putFileOp("h:1", 7, f1), putServerOp("h:1", 7, 1)},
			{putFileOp("h:1", 7, f2)},
		}, []string{"one", "two"}, 1, 0},
		{"file value with a lease that is not its key's", [][]kvOp{
			{kvOp{key: fileKey(vp, "h:1", 7, "one"), val: appendFileRecord(nil, f1), lease: 8}, putServerOp("h:1", 7, 1)},
		}, nil, 1, 0},
		{"server record rewritten keeps files", [][]kvOp{
			{putFileOp("h:1", 7, f1), putServerOp("h:1", 7, 1)},
			{putServerOp("h:1", 7, 1)},
		}, []string{"one"}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newView(vp)
			for _, batch := range tt.batches {
				for _, op := range batch {
					if op.del {
						v.delete(op.key)
					} else {
						v.put(op.key, op.val, op.lease)
					}
				}
				v.flush()
			}
			es, _ := v.idx.files("")
			if got := names(es); !slices.Equal(got, tt.want) {
				t.Errorf("files = %q, want %q", got, tt.want)
			}
			if len(v.servers) != tt.servers {
				t.Errorf("%d servers, want %d", len(v.servers), tt.servers)
			}
			for _, st := range v.servers {
				if st.srv.Files != len(tt.want) {
					t.Errorf("server %s: Files = %d, want %d", st.srv.Addr, st.srv.Files, len(tt.want))
				}
			}
			if got := v.pendingFiles(); got != tt.pending {
				t.Errorf("pending = %d, want %d", got, tt.pending)
			}
		})
	}
}
