// Package migrationtest checks, against a real redis-server, that sessions
// written by github.com/boj/redistore are read and moved by redistore's
// Config.Legacy without losing any. It is a module of its own so that only
// these tests depend on boj/redistore.
package migrationtest
