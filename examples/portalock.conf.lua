-- An example portalock configuration: the named locks and semaphores of one application.
-- Load it with portalock.config.load("examples/portalock.conf.lua") (or point
-- PORTALOCK_CONFIG at it) and ask the registry by name: reg:lock("migrations").
-- Only this vocabulary is available here; see README "Configuration".
directory "/tmp"                       -- relative filenames below live here

defaults { timeout = 30, check_interval = 0.25 }

lock "migrations" { timeout = 600 }    -- /tmp/migrations.lock: one schema migration at a time
rlock "cache" { filename = "portalock-example-cache.lock" }
pid_file_lock "daemon" { filename = "portalock-example.pid" }
bounded_semaphore "encoders" { maximum = 2, name = "portalock-example-encoders" }
semaphore "gpus" { value = 1, name = "portalock-example-gpus" }
