# server.rb - a minimal single-file Rails 6.1 app with Action Mailbox, for smtphook's
# integration tests. Runs on Debian 12's system gems only (no Bundler, no network).
#
#   ruby server.rb --port N --ingress relay|mailgun|sendgrid|all --dir TMPDIR
#
# TMPDIR holds the SQLite database, the Active Storage (Disk) files and emails.jsonl: one
# JSON line per processed email, written by the mailbox it was routed to. Secrets come
# from the environment, as Action Mailbox 6.1 reads them when no credentials are set:
# RAILS_INBOUND_EMAIL_PASSWORD (relay, sendgrid), MAILGUN_INGRESS_SIGNING_KEY (mailgun).
# Prints "READY <port>" on stdout once it accepts connections; GET /up answers 200 too.

require "optparse"
require "json"
require "base64"

OPTS = { port: 3000, ingress: "relay", dir: nil }
OptionParser.new do |o|
  o.on("--port N", Integer) { |v| OPTS[:port] = v }
  o.on("--ingress NAME", %w[relay mailgun sendgrid all]) { |v| OPTS[:ingress] = v }
  o.on("--dir DIR") { |v| OPTS[:dir] = v }
end.parse!
abort "server.rb: --dir is required" unless OPTS[:dir]
DIR = File.expand_path(OPTS[:dir])
RECORD = File.join(DIR, "emails.jsonl")

ENV["RAILS_ENV"] = "production"
ENV["DATABASE_URL"] = "sqlite3:#{File.join(DIR, "db.sqlite3")}?timeout=10000"

require "rails"
require "active_record/railtie"
require "active_storage/engine"
require "action_controller/railtie"
require "active_job/railtie"
require "action_mailbox/engine"

# Handles one request at a time: SQLite gives "database is locked" errors under parallel
# writers. With --ingress all it also sets ActionMailbox.ingress from the request path
# before the ingress controller compares it (BaseController#ensure_configured).
class OneAtATime
  LOCK = Mutex.new

  def initialize(app, ingress_from_path)
    @app, @ingress_from_path = app, ingress_from_path
  end

  def call(env)
    LOCK.synchronize do
      if @ingress_from_path
        name = env["PATH_INFO"][%r{\A/rails/action_mailbox/(relay|mailgun|sendgrid)/}, 1]
        ActionMailbox.ingress = name&.to_sym
      end
      @app.call(env)
    end
  end
end

class SmtphookTestApp < Rails::Application
  config.load_defaults 6.1 # as a generated 6.1 app; the zeitwerk autoloader
  config.root = __dir__
  config.eager_load = true # no autoloading while requests run in parallel
  config.secret_key_base = "smtphook-test-only-" + "0" * 40
  config.require_master_key = false
  config.logger = ActiveSupport::Logger.new($stderr)
  config.log_level = :info
  config.active_job.queue_adapter = :inline
  config.active_storage.service = :local
  config.active_storage.service_configurations = {
    "local" => { "service" => "Disk", "root" => File.join(DIR, "storage") }
  }
  config.action_mailbox.incinerate = false # its job needs a delayed queue
  config.action_mailbox.ingress = OPTS[:ingress].to_sym unless OPTS[:ingress] == "all"
  config.middleware.insert_before 0, OneAtATime, OPTS[:ingress] == "all"
end

Rails.application.routes.prepend do
  get "/up" => proc { [200, { "Content-Type" => "text/plain" }, ["up\n"]] }
end

Rails.application.initialize!

# Schema from the engines' own migrations (Active Storage, Action Mailbox).
ActiveRecord::Migration.verbose = false
ActiveRecord::MigrationContext.new(
  %w[activestorage actionmailbox].map { |g| File.join(Gem.loaded_specs[g].full_gem_path, "db/migrate") },
  ActiveRecord::SchemaMigration
).migrate

class ApplicationMailbox < ActionMailbox::Base
  routing(/^support@/i => :support)
  routing all: :catchall

  # One JSON line per email; "raw" is base64 of the bytes Active Storage holds. Other
  # strings are made valid UTF-8 (8-bit header bytes that are not become U+FFFD).
  def process
    mail = inbound_email.mail
    text = ->(v) { v.nil? ? nil : v.to_s.dup.force_encoding("UTF-8").scrub }
    line = {
      mailbox: self.class.name.delete_suffix("Mailbox").underscore,
      inbound_email_id: inbound_email.id,
      message_id: text[inbound_email.message_id],
      to: Array(mail.to).map(&text),
      recipients: mail.recipients.map(&text),
      x_original_to: Array(mail.header[:x_original_to]).map(&text),
      subject: text[mail.subject],
      raw: Base64.strict_encode64(inbound_email.source)
    }.to_json
    File.open(RECORD, "a") do |f|
      f.flock(File::LOCK_EX)
      f.write(line + "\n")
    end
  end
end

class SupportMailbox < ApplicationMailbox; end
class CatchallMailbox < ApplicationMailbox; end

# Exit when the process that started it goes away (a killed test run leaves no server).
PARENT = Process.ppid
Thread.new do
  sleep 0.5 while Process.ppid == PARENT
  Process.kill("TERM", Process.pid)
end

require "rack/handler/webrick"
Rack::Handler::WEBrick.run(
  Rails.application, Host: "127.0.0.1", Port: OPTS[:port], AccessLog: [],
  StartCallback: -> { puts "READY #{OPTS[:port]}"; $stdout.flush }
) do |server|
  %w[TERM INT].each { |sig| trap(sig) { server.shutdown } }
end
