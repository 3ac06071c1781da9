// Runs the docker-cd Jenkins library outside Jenkins: the declarative DSL and the pipeline steps
// (sh, input, withCredentials, lock, ...) are small stand-ins that record what the library does.
// Used by tests/ci_templates/test_jenkins.py:
//   groovy jenkins_harness.groovy VARS_DIR 'KEY=VALUE;...' (env) 'KEY=VALUE;...' (params)
// prints one recorded call per line: "sh docker-cd ...", "input ...", "credentials ...", "lock ...".
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy
import org.codehaus.groovy.control.CompilerConfiguration

@Retention(RetentionPolicy.SOURCE)
@interface NonCPS {}

abstract class JenkinsStub extends Script {
    static List<String> calls = []
    static Expando env = new Expando()
    static Map params = [:]
    static File vars
    static Map<String, String> dotenvs = [:]
    static Map current = null

    static Script load(String name) {
        CompilerConfiguration config = new CompilerConfiguration()
        config.scriptBaseClass = JenkinsStub.name
        return new GroovyShell(JenkinsStub.classLoader, new Binding(), config)
            .parse(new File(vars, name + '.groovy'))
    }

    def dockerCd(String step, List args = [], Map options = [:]) {
        return load('dockerCd').call(step, args, options)
    }

    // --- declarative DSL: collect a stage's parts, then run it the way Jenkins does
    def pipeline(Closure body) { body() }
    def agent(Closure body) {}
    def options(Closure body) {}
    def parameters(Closure body) {}
    def disableConcurrentBuilds() {}
    def timestamps() {}
    def label(String text) {}
    def choice(Map spec) { spec }
    def text(Map spec) { spec }
    def environment(Closure body) {
        body.resolveStrategy = Closure.DELEGATE_FIRST
        body.delegate = new Object() {
            void setProperty(String name, Object value) { env.setProperty(name, value.toString()) }
        }
        body()
    }
    def stages(Closure body) { body() }
    def stage(String name, Closure body) {
        current = [name: name]
        body()
        Map running = current
        if (running.expression && !running.expression()) {
            return
        }
        calls << "stage ${name}".toString()
        try {
            running.steps()
        } catch (Throwable e) {
            calls << "failed ${name}: ${e.message}".toString()
            if (running.failure) {
                running.failure()
            }
            throw e
        } finally {
            if (running.always) {
                running.always()
            }
        }
    }
    def when(Closure body) { body() }
    def expression(Closure body) { current.expression = body }
    def steps(Closure body) { current.steps = body }
    def post(Closure body) { body() }
    def always(Closure body) { current.always = body }
    def failure(Closure body) { current.failure = body }
    def script(Closure body) { body() }

    // --- pipeline steps
    def sh(Map spec) {
        calls << "sh ${spec.script.replace("'", '')}".toString()
        List words = spec.script.replace("'", '').tokenize(' ')
        if (words[1] == 'deploy' && env.getProperty('CD_RELEASE_COMMIT')) {  // what it deploys
            calls << ("env CD_RELEASE_COMMIT=${env.getProperty('CD_RELEASE_COMMIT')} " +
                      "CD_RELEASE_TEMPLATE_HASH=${env.getProperty('CD_RELEASE_TEMPLATE_HASH')}")
                     .toString()
        }
        int at = words.indexOf('--dotenv')
        if (at >= 0 && dotenvs[words[1]]) {
            dotenvs[words[at + 1]] = dotenvs[words[1]]
        }
        return 0
    }
    def fileExists(String path) { dotenvs.containsKey(path) }
    def readFile(String path) { dotenvs[path] }
    def error(String message) { throw new RuntimeException(message) }
    def input(Map spec) { calls << "input ${spec.message}".toString() }
    def archiveArtifacts(Map spec) {}
    def lock(Map spec, Closure body) { calls << "lock ${spec.resource}".toString(); body() }
    def catchError(Map spec, Closure body) {
        try { body() } catch (Throwable e) { calls << "caught ${e.message}".toString() }
    }
    def usernamePassword(Map spec) { "usernamePassword ${spec.credentialsId} -> " +
        "${spec.usernameVariable}/${spec.passwordVariable}" }
    def string(Map spec) { spec.credentialsId ? "string ${spec.credentialsId} -> ${spec.variable}" : spec }
    def withCredentials(List bindings, Closure body) {
        calls << "credentials ${bindings.join(', ')}".toString()
        return body()
    }
}

static Map parse(String text) {
    text.tokenize(';').collectEntries { String pair ->
        int eq = pair.indexOf('=')
        eq < 0 ? [pair, ''] : [pair.substring(0, eq), pair.substring(eq + 1)]
    }
}

JenkinsStub.vars = new File(args[0])
parse(args[1]).each { k, v -> JenkinsStub.env.setProperty(k, v) }
JenkinsStub.params = parse(args[2])
JenkinsStub.dotenvs['build'] = 'CD_IMAGE=registry.example.com/demo/hello-app@sha256:' + 'a' * 64 + '\n'
try {
    JenkinsStub.load('dockerCdPipeline').call(
        imageRepository: 'registry.example.com/demo/hello-app',
        registryCredentialsId: 'registry-ci',
        serviceUrl: JenkinsStub.env.getProperty('SERVICE') ?: '',
        serviceTokenCredentialsId: 'docker-cd-service-token',
        images: JenkinsStub.env.getProperty('IMAGES') ?: '')
} catch (Throwable e) {
    JenkinsStub.calls << "error ${e.message}".toString()
}
JenkinsStub.calls.each { println it }
