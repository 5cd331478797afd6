// Container Apps environment with a Consumption profile (master) and a serverless A100 GPU
// profile (workers, scale 0..N), on the VNet, logging to Log Analytics, with the shared share.
param name string
param location string
param tags object = {}
param logAnalyticsName string
param subnetId string
param storageAccountName string
param shareName string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource env 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    vnetConfiguration: { infrastructureSubnetId: subnetId, internal: false }
    workloadProfiles: [
      { name: 'Consumption', workloadProfileType: 'Consumption' }
      { name: 'gpu-a100', workloadProfileType: 'Consumption-GPU-NC24-A100' }
    ]
    zoneRedundant: false
  }
}

resource share 'Microsoft.App/managedEnvironments/storages@2024-03-01' = {
  parent: env
  name: 'sqlembed-data'
  properties: {
    azureFile: {
      accountName: account.name
      accountKey: account.listKeys().keys[0].value
      shareName: shareName
      accessMode: 'ReadWrite'
    }
  }
}

output id string = env.id
output name string = env.name
output storageName string = share.name
output defaultDomain string = env.properties.defaultDomain
