module github.com/redisession/redistore/migrationtest

go 1.26.0

replace github.com/redisession/redistore => ../

require (
	github.com/boj/redistore v1.4.1
	github.com/redis/rueidis v1.0.79
	github.com/redisession/redistore v0.0.0-00010101000000-000000000000
)

require (
	github.com/gomodule/redigo v1.9.2 // indirect
	github.com/gorilla/securecookie v1.1.2 // indirect
	github.com/gorilla/sessions v1.4.0 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
