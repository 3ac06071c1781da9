// dockerCd: runs one docker-cd step in a Jenkins pipeline, the way the GitLab template's jobs do.
//
//   dockerCd('deploy', ['--environment', 'staging'])          // returns the step's outputs
//   dockerCd('scan', ["${env.CD_IMAGE}"], [retries: 0])
//
// The step reads its settings from CD_* environment variables (and Jenkins' GIT_COMMIT,
// BRANCH_NAME, TAG_NAME, BUILD_URL, ...). Its outputs (CD_IMAGE, CD_RELEASE_ID, ...) are read
// from the step's dotenv file and set in `env` for the later stages, as GitLab's dotenv reports
// do. Exit codes: 0 done; 1 the answer is no (policy, gate): the build fails, no retry;
// 2 bad input: fails, no retry; 3 an outside system failed: retried `retries` times.

def call(String step, List args = [], Map options = [:]) {
    int retries = (options.retries == null ? 2 : options.retries) as int
    String dotenv = ".docker-cd-${step.replaceAll('[^a-z]', '-')}.env"
    String command = commandLine(step, args, dotenv)
    int status = 3
    for (int attempt = 0; attempt <= retries && status == 3; attempt++) {
        status = sh(script: command, returnStatus: true) as int
    }
    switch (status) {
        case 0:
            return exportOutputs(dotenv)
        case 1:
            error("docker-cd ${step}: the answer is no (see the log above)")
            break
        case 2:
            error("docker-cd ${step}: wrong usage or input (see the Error: line above)")
            break
        default:
            error("docker-cd ${step}: an outside system failed after ${retries + 1} attempts " +
                  "(exit ${status})")
    }
}

// Reads KEY=VALUE lines into env (what the next stages see) and returns them as a map.
Map exportOutputs(String dotenv) {
    Map outputs = [:]
    if (!fileExists(dotenv)) {
        return outputs
    }
    for (String line : readFile(dotenv).split('\n')) {
        int eq = line.indexOf('=')
        if (eq > 0) {
            String key = line.substring(0, eq)
            String value = line.substring(eq + 1)
            outputs[key] = value
            env.setProperty(key, value)
        }
    }
    return outputs
}

// `docker-cd <step> <args> --dotenv FILE`, each word quoted for sh (pure: no pipeline steps).
@NonCPS
String commandLine(String step, List args, String dotenv) {
    List words = ['docker-cd'] + step.tokenize(' ') + args.collect { it.toString() } +
        ['--dotenv', dotenv]
    return words.collect { String word -> "'" + word.replace("'", "'\"'\"'") + "'" }.join(' ')
}
