package synccontroller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// contacts holds the contact of every migration the leader follows, keyed
// by the local VMIM. The pusher and the server's handlers share it.
type contacts struct {
	mu    sync.Mutex
	byKey map[types.NamespacedName]*contact
}

func newContacts() *contacts {
	return &contacts{byKey: map[types.NamespacedName]*contact{}}
}

// track applies change to the migration's contact, starting one at now
// for a migration seen for the first time, and returns a copy.
func (cs *contacts) track(key types.NamespacedName, r role, migrationID string, now time.Time, change func(*contact)) contact {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.entry(key, r, migrationID, now)
	change(c)
	return *c
}

// lookup returns a copy of the migration's contact, if it has one.
func (cs *contacts) lookup(key types.NamespacedName) (contact, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c, found := cs.byKey[key]
	if !found {
		return contact{}, false
	}
	return *c, true
}

// heard records that the peer called about the migration.
func (cs *contacts) heard(key types.NamespacedName, r role, migrationID string, now time.Time) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.entry(key, r, migrationID, now).heardAt = now
}

// update changes the migration's contact, if it has one.
func (cs *contacts) update(key types.NamespacedName, change func(*contact)) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, found := cs.byKey[key]; found {
		change(c)
	}
}

func (cs *contacts) forget(key types.NamespacedName) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.byKey, key)
}

func (cs *contacts) entry(key types.NamespacedName, r role, migrationID string, now time.Time) *contact {
	c, found := cs.byKey[key]
	if !found {
		c = &contact{role: r, migrationID: migrationID, since: now}
		cs.byKey[key] = c
	}
	return c
}

// succeeded records a call to the peer that got through.
func (c *contact) succeeded(now time.Time) {
	c.heardAt = now
	c.failures = 0
	c.lastError = ""
}

// failed records a call to the peer that did not.
func (c *contact) failed(err error) {
	c.failures++
	c.lastError = err.Error()
}
