// dockerCdPipeline: the whole docker-cd delivery as a declarative pipeline, with the same stages
// and the same steps as ci-templates/docker-cd.yml (build, scan, deploy-test, verify-test,
// promote, deploy-staging, verify-staging, deploy-production).
//
// In the application's Jenkinsfile (library configured in Jenkins as "docker-cd"):
//   @Library('docker-cd') _
//   dockerCdPipeline(
//       imageRepository: 'registry.example.com/group/app',
//       registryCredentialsId: 'registry',        // username/password credentials
//       serviceUrl: 'https://promotion.example.com',
//       serviceTokenCredentialsId: 'docker-cd-service-token')   // secret text
//
// Settings (each also a CD_* variable the steps read; the defaults are the template's):
//   imageRepository (CD_IMAGE_REPOSITORY), registry (CD_REGISTRY), dockerfile (CD_DOCKERFILE,
//   Dockerfile), context (CD_BUILD_CONTEXT, .), severityThreshold (CD_SCAN_SEVERITY_THRESHOLD, HIGH),
//   templateDir (CD_TEMPLATE_DIR, deploy), deployTarget (CD_DEPLOY_TARGET, docker),
//   serviceUrl (CD_SERVICE_URL, none), registryCredentialsId, serviceTokenCredentialsId,
//   productionApprovers (who may answer the production input; any user when empty),
//   agentLabel (node label, any when empty),
//   images (an application of several images: 'api=services/api,worker=services/worker/Dockerfile.worker',
//   each NAME=PATH a member of the release: the Compose service it runs as, and its build context
//   directory or its Dockerfile in one; each is built, pushed to imageRepository/NAME and scanned,
//   then one release of them all is registered (CD_RELEASE_ID); empty = one image).
// Build parameters CD_IMAGE (or CD_RELEASE_ID + CD_RELEASE_IMAGES, one CD_IMAGE_<NAME>=image line
// per member) + CD_TARGET_ENVIRONMENT deploy exactly that image (release) to that
// environment and nothing else, like a pipeline the promotion service triggers in GitLab;
// CD_TARGET_ENVIRONMENT + CD_TEARDOWN tear that environment down after an input (its volumes
// are kept), like GitLab's "Stop environment". Every other build checks every environment's
// template first, before it builds.

def call(Map config = [:]) {
    Map settings = [
        dockerfile: 'Dockerfile', context: '.', severityThreshold: 'HIGH', templateDir: 'deploy',
        deployTarget: 'docker', serviceUrl: '', registry: '', productionApprovers: '',
        registryCredentialsId: '', serviceTokenCredentialsId: '', agentLabel: '', images: '',
    ] + config
    List members = releaseMembers(settings.images)
    if (!settings.imageRepository) {
        error('dockerCdPipeline: set imageRepository (registry/path the image is pushed to)')
    }

    pipeline {
        agent { label(settings.agentLabel ?: '') }
        options {
            disableConcurrentBuilds()
            timestamps()
        }
        parameters {
            string(name: 'CD_IMAGE', defaultValue: '',
                   description: 'repository@sha256:... to deploy (skips build and scan)')
            choice(name: 'CD_TARGET_ENVIRONMENT', choices: ['', 'test', 'staging', 'production'],
                   description: 'environment to deploy CD_IMAGE to')
            string(name: 'CD_RELEASE_ID', defaultValue: '',
                   description: 'the release to deploy (several images; skips build and scan)')
            text(name: 'CD_RELEASE_IMAGES', defaultValue: '',
                 description: 'its members, one CD_IMAGE_<NAME>=repository@sha256:... per line')
            string(name: 'CD_RELEASE_COMMIT', defaultValue: '',
                   description: 'its commit: deploy restores the template directory from it')
            string(name: 'CD_RELEASE_TEMPLATE_HASH', defaultValue: '',
                   description: 'its template hash: deploy refuses a template that differs')
            string(name: 'CD_PROMOTION_ID', defaultValue: '', description: 'promotion service id')
            booleanParam(name: 'CD_TEARDOWN', defaultValue: false,
                         description: 'tear CD_TARGET_ENVIRONMENT down (its volumes are kept)')
        }
        environment {
            CD_IMAGE_REPOSITORY = "${settings.imageRepository}"
            CD_REGISTRY = "${settings.registry}"
            CD_DOCKERFILE = "${settings.dockerfile}"
            CD_BUILD_CONTEXT = "${settings.context}"
            CD_SCAN_SEVERITY_THRESHOLD = "${settings.severityThreshold}"
            CD_TEMPLATE_DIR = "${settings.templateDir}"
            CD_DEPLOY_TARGET = "${settings.deployTarget}"
            CD_SERVICE_URL = "${settings.serviceUrl}"
        }
        stages {
            stage('build') {
                when { expression { !params.CD_TARGET_ENVIRONMENT } }
                steps {
                    script {
                        dockerCd('template check', ['--environments', 'test,staging,production'],
                                 [retries: 0])
                        withRegistry(settings) {
                            if (members) {
                                for (Map m : members) {
                                    dockerCd('build', ['--push', '--member', m.name,
                                                       '--context', m.context, '--file', m.dockerfile])
                                }
                            } else {
                                dockerCd('build', ['--push'])
                                if (env.TAG_NAME) {
                                    dockerCd('tag', [env.CD_IMAGE, '--scheme', 'semver'])
                                }
                            }
                        }
                        if (settings.serviceUrl && !members) {
                            withService(settings) { dockerCd('register') }
                        }
                    }
                }
            }
            stage('scan') {
                when { expression { !params.CD_TARGET_ENVIRONMENT } }
                steps {
                    script {
                        withRegistry(settings) {
                            withService(settings) {
                                for (Map m : members) {
                                    dockerCd('scan', ['--member', m.name,
                                                      '--gitlab-report', "gl-container-scanning-report-${m.name}.json",
                                                      '--sbom', "gl-sbom-${m.name}.cdx.json",
                                                      '--json', "scan-${m.name}.json"], [retries: 0])
                                }
                                if (!members) {
                                    dockerCd('scan', [env.CD_IMAGE,
                                                      '--gitlab-report', 'gl-container-scanning-report.json',
                                                      '--sbom', 'gl-sbom-docker-cd.cdx.json'], [retries: 0])
                                }
                            }
                        }
                        if (settings.serviceUrl && members) {
                            // one release of every member, with each member's scan
                            withRegistry(settings) {
                                withService(settings) {
                                    dockerCd('register', ['--scan-report', 'scan-{name}.json'])
                                }
                            }
                        }
                    }
                }
                post {
                    always {
                        archiveArtifacts(artifacts: 'gl-*.json', allowEmptyArchive: true)
                    }
                }
            }
            stage('deploy-test') {
                when { expression { deploys(params, 'test') || tearsDown(params, 'test') } }
                steps { script { deployTo(settings, params, 'test', false) } }
            }
            stage('verify-test') {
                when { expression { deploys(params, 'test') } }
                steps { script { verifyIn(settings, 'test') } }
            }
            stage('promote') {
                when { expression { deploys(params, 'test') && settings.serviceUrl } }
                steps {
                    script {
                        // Shows whether the service will promote the image to staging, and why not.
                        withService(settings) {
                            catchError(buildResult: 'SUCCESS', stageResult: 'UNSTABLE') {
                                dockerCd('gate', ['--environment', 'staging'], [retries: 0])
                            }
                        }
                    }
                }
            }
            stage('deploy-staging') {
                when { expression { deploys(params, 'staging') || tearsDown(params, 'staging') } }
                steps { script { deployTo(settings, params, 'staging', true) } }
            }
            stage('verify-staging') {
                when { expression { deploys(params, 'staging') } }
                steps { script { verifyIn(settings, 'staging') } }
            }
            stage('deploy-production') {
                when {
                    expression { deploys(params, 'production') || tearsDown(params, 'production') }
                }
                steps {
                    script {
                        if (tearsDown(params, 'production')) {
                            deployTo(settings, params, 'production', true)
                            return
                        }
                        String what = params.CD_RELEASE_ID ? "release ${params.CD_RELEASE_ID}" :
                            (params.CD_IMAGE ?: env.CD_IMAGE)
                        input(message: "Deploy ${what} to production?",
                              ok: 'Deploy',
                              submitter: settings.productionApprovers ?: null)
                        deployTo(settings, params, 'production', true)
                        verifyIn(settings, 'production')
                    }
                }
                post {
                    failure {
                        script {
                            input(message: 'Roll production back to its last verified release?',
                                  ok: 'Roll back', submitter: settings.productionApprovers ?: null)
                            withService(settings) {
                                dockerCd('rollback', ['--environment', 'production'])
                            }
                        }
                    }
                }
            }
        }
    }
}

// A build of the default branch goes to test; staging and production only take a parameterised
// build (CD_IMAGE + CD_TARGET_ENVIRONMENT, as the promotion service starts one), whose deploy asks
// the service's gate first.
boolean deploys(Map params, String environment) {
    if (params.CD_TARGET_ENVIRONMENT) {
        return params.CD_TARGET_ENVIRONMENT == environment &&
            (params.CD_IMAGE || params.CD_RELEASE_ID)
    }
    boolean defaultBranch = env.BRANCH_NAME in ['main', 'master'] && !env.CHANGE_ID
    return defaultBranch && environment == 'test'
}

// A build with CD_TARGET_ENVIRONMENT and CD_TEARDOWN removes that environment (no image needed).
boolean tearsDown(Map params, String environment) {
    return params.CD_TEARDOWN?.toString() == 'true' && params.CD_TARGET_ENVIRONMENT == environment
}

def deployTo(Map settings, Map params, String environment, boolean gated) {
    if (tearsDown(params, environment)) {
        input(message: "Tear ${environment} down (its volumes are kept)?", ok: 'Tear down',
              submitter: settings.productionApprovers ?: null)
        lock(resource: "docker-cd-${environment}") {
            dockerCd('teardown', ['--environment', environment])
        }
        return
    }
    if (params.CD_IMAGE || params.CD_RELEASE_ID) {
        env.CD_IMAGE = params.CD_IMAGE ?: ''
        env.CD_RELEASE_ID = params.CD_RELEASE_ID ?: ''
        env.CD_PROMOTION_ID = params.CD_PROMOTION_ID ?: ''
        env.CD_RELEASE_COMMIT = params.CD_RELEASE_COMMIT ?: ''
        env.CD_RELEASE_TEMPLATE_HASH = params.CD_RELEASE_TEMPLATE_HASH ?: ''
        for (String line : (params.CD_RELEASE_IMAGES ?: '').readLines()) {
            int eq = line.indexOf('=')
            if (line.trim().startsWith('CD_IMAGE_') && eq > 0) {
                env.setProperty(line.substring(0, eq).trim(), line.substring(eq + 1).trim())
            }
        }
    }
    lock(resource: "docker-cd-${environment}") {
        withRegistry(settings) {
            withService(settings) {
                if (gated) {
                    dockerCd('gate', ['--environment', environment, '--claim'], [retries: 0])
                }
                dockerCd('deploy', ['--environment', environment])
            }
        }
    }
}

def verifyIn(Map settings, String environment) {
    withService(settings) {
        dockerCd('verify', ['--environment', environment], [retries: 0])
    }
}

// Registry credentials, bound only while a step needs them (masked in the log by Jenkins).
def withRegistry(Map settings, Closure body) {
    if (!settings.registryCredentialsId) {
        return body()
    }
    withCredentials([usernamePassword(credentialsId: settings.registryCredentialsId,
                                      usernameVariable: 'CD_REGISTRY_USER',
                                      passwordVariable: 'CD_REGISTRY_PASSWORD')]) {
        return body()
    }
}

def withService(Map settings, Closure body) {
    if (!settings.serviceTokenCredentialsId) {
        return body()
    }
    withCredentials([string(credentialsId: settings.serviceTokenCredentialsId,
                            variable: 'CD_SERVICE_TOKEN')]) {
        return body()
    }
}

// 'api=services/api,worker=services/worker/Dockerfile.worker' -> [[name:, context:, dockerfile:]]:
// a PATH naming a Dockerfile builds in its directory, a directory with its Dockerfile.
@NonCPS
List releaseMembers(String images) {
    return (images ?: '').tokenize(',').collect { String item ->
        String name = item.substring(0, item.indexOf('=')).trim()
        String path = item.substring(item.indexOf('=') + 1).trim()
        List parts = path.tokenize('/')
        if (parts && parts.last().contains('Dockerfile')) {
            String context = parts.size() > 1 ? parts[0..-2].join('/') : '.'
            return [name: name, context: context, dockerfile: parts.last()]
        }
        return [name: name, context: path, dockerfile: 'Dockerfile']
    }
}
